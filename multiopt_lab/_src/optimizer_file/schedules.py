"""Learning-rate schedules as data: MLX's schedules described, and built back from the description.

MLX's schedules (``optim.cosine_decay(1e-3, 1000)``, ``optim.join_schedules(...)``)
are plain closures: nothing on them says what they are. A function made by
one of ``mlx.optimizers.schedulers``' factories keeps that factory's
arguments in its closure, under the argument names, which the adapter to
MLX's private side reads
(:func:`multiopt_lab._src.mlx_internals.schedule_arguments`). A schedule becomes
a table of plain data, and the same factory called with the same numbers
makes a schedule that gives the same values to the last bit::

    {schedule = "cosine_decay", init = 0.001, decay_steps = 1000, end = 0.0}

``join_schedules`` nests its parts; a recipe's scaled copy of a schedule
(:class:`ScaledSchedule`, e.g. ``layerwise_lr_decay``) is
``{schedule = "scaled", factor = 0.5, base = {...}}``. A schedule written as
your own Python function cannot be described: use MLX's, or a constant.
Reading a file never imports or runs anything it names: only the factories
of ``mlx.optimizers.schedulers`` can be called, with numbers.
"""

from __future__ import annotations

import inspect
import math
from typing import Any
from collections.abc import Callable

import mlx.core as mx
import mlx.optimizers.schedulers as mlx_schedulers

from multiopt_lab._src.io.rulefile_data import shown
from multiopt_lab._src.mlx_internals import schedule_arguments, schedules

__all__ = ["ScaledSchedule", "SCHEDULES", "SCALED", "schedule_to_data", "schedule_from_data",
           "plain_value", "schedulers_of"]

#: The schedule factories a file may name: the public functions of mlx.optimizers.schedulers.
SCHEDULES: dict[str, Callable] = {
    name: function for name, function in vars(mlx_schedulers).items()
    if inspect.isfunction(function) and function.__module__ == mlx_schedulers.__name__
    and not name.startswith("_")
}
#: The name of a scaled schedule (:class:`ScaledSchedule`) in a file.
SCALED = "scaled"
_INT64 = 2 ** 63


class ScaledSchedule:
    """A learning-rate schedule times a constant factor (what recipes give a scaled group).

    Args:
        schedule (Callable): The schedule, ``step -> value``.
        factor (float): The constant it is multiplied by.
    """

    def __init__(self, schedule: Callable[[Any], Any], factor: float):
        self.schedule, self.factor = schedule, factor

    def __call__(self, step):
        return self.schedule(step) * self.factor

    def __repr__(self) -> str:
        return f"ScaledSchedule({self.schedule!r}, {self.factor:g})"


def schedulers_of(optimizer: Any) -> dict[str, Callable]:
    """``{argument name: schedule}`` of an MLX optimizer (a copy: see :func:`~multiopt_lab._src.mlx_internals.schedules`).
    """
    return dict(schedules(optimizer))


def _describe_function(function: Any) -> str:
    if inspect.isfunction(function) or inspect.ismethod(function):
        return f"the function {function.__qualname__} (module {function.__module__})"
    return f"a {type(function).__name__} object"


def schedule_to_data(schedule: Any) -> dict[str, Any]:
    """A schedule as a table of plain data: ``{"schedule": factory name, argument: value, ...}``.

    Raises:
        ValueError: For a schedule that is not MLX's (your own function, a
            lambda) or whose arguments are not plain numbers.
    """
    if isinstance(schedule, ScaledSchedule):
        return {"schedule": SCALED, "factor": plain_value(schedule.factor, "its factor"),
                "base": schedule_to_data(schedule.schedule)}
    found = schedule_arguments(schedule)
    if found is None:
        raise ValueError(
            f"{_describe_function(schedule)} is not one of MLX's schedules, the ones a file "
            f"holds ({', '.join(f'optim.{n}' for n in sorted(SCHEDULES))}, with number "
            "arguments); build the schedule with those, or use a constant")
    name, arguments = found
    data: dict[str, Any] = {"schedule": name}
    for argument, value in arguments.items():
        data[argument] = plain_value(value, f"the argument {argument!r} of its {name}",
                                     schedules=True)
    return data


def plain_value(value: Any, where: str, schedules: bool = False) -> Any:
    """``value`` as file data (bool, int, float, str, lists of them), or a ValueError naming ``where``.

    Tuples become lists; with ``schedules=True`` a schedule inside becomes its table.
    """
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"{where} is {shown(value)}, beyond the 64-bit integers a file holds")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}; a file holds finite numbers only")
        return value
    if isinstance(value, (list, tuple)):
        return [plain_value(item, where, schedules) for item in value]
    if isinstance(value, mx.array):
        raise ValueError(f"{where} is an mx.array ({value.dtype}); a file holds plain numbers: "
                         "pass a Python float or int instead")
    if schedules and callable(value):
        return schedule_to_data(value)
    raise ValueError(f"{where} is a {type(value).__name__} ({shown(value)}); a file holds "
                     "numbers, booleans, strings and lists of them")


def schedule_from_data(data: Any, where: str = "the schedule") -> Callable:
    """Build the schedule a table describes (only MLX's factories, and :class:`ScaledSchedule`).

    Raises:
        ValueError: An unknown schedule, unknown or missing arguments, or
            values the factory refuses (the message names ``where``).
    """
    if not isinstance(data, dict) or not isinstance(data.get("schedule"), str):
        raise ValueError(f"{where}: expected a table with a string 'schedule' (e.g. "
                         "{schedule = \"cosine_decay\", init = 0.001, decay_steps = 1000}), "
                         f"found {shown(data)}")
    name = data["schedule"]
    arguments = {key: value for key, value in data.items() if key != "schedule"}
    if name == SCALED:
        _expect_keys(arguments, ["factor", "base"], ["factor", "base"], f"{where} ({SCALED})")
        factor = arguments["factor"]
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor):
            raise ValueError(f"{where} ({SCALED}): expected a finite number 'factor', found "
                             f"{shown(factor)}")
        return ScaledSchedule(schedule_from_data(arguments["base"], f"{where} (its base)"), factor)
    factory = SCHEDULES.get(name)
    if factory is None:
        raise ValueError(f"{where}: unknown schedule {shown(name)}; expected one of "
                         f"{', '.join(sorted(SCHEDULES))} (mlx.optimizers) or {SCALED!r}")
    parameters = inspect.signature(factory).parameters
    required = [p for p, spec in parameters.items() if spec.default is inspect.Parameter.empty]
    _expect_keys(arguments, list(parameters), required, f"{where} ({name})")
    built = {key: _schedule_argument(value, f"{where} ({name}), its {key!r}")
             for key, value in arguments.items()}
    try:
        return factory(**built)
    except Exception as err:  # the factory's own checks: decay_steps < 1, ...
        raise ValueError(f"{where}: optim.{name} refused its arguments: {type(err).__name__}: "
                         f"{err}") from None


def _schedule_argument(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return schedule_from_data(value, where)
    if isinstance(value, list):
        return [_schedule_argument(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}; expected a finite number")
    if value is None or not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"{where}: expected a number, found {shown(value)}")
    return value


def _expect_keys(arguments: dict, allowed: list[str], required: list[str], where: str) -> None:
    unknown = [key for key in arguments if key not in allowed]
    if unknown:
        raise ValueError(f"{where}: unknown arguments {shown(unknown)}; expected "
                         f"{', '.join(allowed)}")
    missing = [key for key in required if key not in arguments]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(repr(m) for m in missing)}")

