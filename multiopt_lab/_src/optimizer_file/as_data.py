"""One group's optimizer as plain data (its class's name and keyword arguments), and back.

What a rule file holds under ``[group.optimizer]``::

    class = "AdamW"
    learning_rate = { schedule = "cosine_decay", init = 0.001, decay_steps = 1000, end = 0.0 }
    betas = [0.9, 0.999]
    eps = 1e-08
    weight_decay = 0.01
    bias_correction = false

Every argument of the class's ``__init__`` is read back from the optimizer:
a scheduled one from its schedule (:mod:`~multiopt_lab._src.optimizer_file.schedules`),
the learning rate from the optimizer's state, the others from the attribute
of the same name. The description is checked by building an optimizer from
it and describing that one again: both must agree, or saving refuses. An
argument that is ``None`` where its default is ``None`` is left out (TOML has
no null).
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np

from multiopt_lab._src.io.rulefile_data import shown
from multiopt_lab._src.optimizer_file.classes import class_name, optimizer_class
from multiopt_lab._src.optimizer_file.schedules import plain_value, schedule_from_data, schedule_to_data, schedulers_of

__all__ = ["optimizer_to_data", "optimizer_from_data"]

_CLASS_KEY = "class"


def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword arguments of ``cls.__init__``; a ValueError for ``*args``/``**kwargs``."""
    signature = inspect.signature(cls.__init__)  # type: ignore[misc]  # the class's own __init__
    found = {}
    for name, parameter in list(signature.parameters.items())[1:]:  # [0] is self
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ValueError(f"{cls.__name__}.__init__ takes {'*' if parameter.kind is parameter.VAR_POSITIONAL else '**'}"
                             f"{name}, so its arguments cannot be read back from an optimizer; "
                             "give it named arguments, each kept under its own name")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise ValueError(f"{cls.__name__}.__init__ takes {name} by position only; a file "
                             "passes arguments by name")
        found[name] = parameter
    return found


def _scalar_of_array(value: mx.array, where: str) -> int | float | bool:
    """A 0-d array's value as the Python number that makes the same array again."""
    if value.ndim != 0:
        raise ValueError(f"{where} is an array of shape {tuple(value.shape)}; a file holds numbers")
    if value.dtype == mx.float32:
        number: float = value.item()  # type: ignore[assignment]  # a float32 array's item() is a float
        # The shortest decimal that names this float32 reads better than its double
        # (0.1, not 0.10000000149011612); keep the double when that does not round-trip.
        # NumPy rounds a double to float32 as mx.array does, and needs no MLX stream (the
        # editor refreshes its exports on a watcher thread).
        short = float(str(np.float32(number)))
        return short if np.float32(short).tobytes() == np.float32(number).tobytes() else number
    if value.dtype in (mx.int32, mx.int64):
        return int(value.item())  # type: ignore[arg-type]  # an int: mlx's item() is typed for any dtype
    if value.dtype == mx.bool_:
        return bool(value.item())
    dtype = str(value.dtype).rsplit(".", 1)[-1]
    raise ValueError(f"{where} is a {dtype} array; a file holds float32 numbers: set it "
                     "from a Python float (e.g. optimizer.learning_rate = 1e-3)")


def _argument(optimizer: Any, name: str, where: str) -> Any:
    schedule = schedulers_of(optimizer).get(name)
    if schedule is not None:
        try:
            return schedule_to_data(schedule)
        except ValueError as err:
            raise ValueError(f"its {name} is a schedule a file cannot hold: {err}") from None
    attributes = vars(optimizer)
    if name in attributes:
        # An attribute is used as given: an array there is no Python number (it would
        # promote a bfloat16 update to float32), so it cannot be written as one.
        return plain_value(attributes[name], f"its {name}") if attributes[name] is not None else None
    if isinstance(optimizer.state, dict) and name in optimizer.state:
        value = optimizer.state[name]  # MLX keeps the learning rate in the state, as an array
        return _scalar_of_array(value, f"its {name}") if isinstance(value, mx.array) \
            else plain_value(value, f"its {name}")
    raise ValueError(f"{where} keeps no attribute {name!r} for its argument of that name, so "
                     f"the argument cannot be read back; keep it as self.{name} in __init__")


def _describe(optimizer: Any) -> dict[str, Any]:
    cls = type(optimizer)
    data: dict[str, Any] = {_CLASS_KEY: class_name(cls)}
    state = optimizer.state if isinstance(optimizer.state, dict) else {}
    for name, parameter in _parameters(cls).items():
        held = name in schedulers_of(optimizer) or name in vars(optimizer) or name in state
        if not held and parameter.default is None:
            continue  # e.g. Adafactor(learning_rate=None): nothing was set
        value = _argument(optimizer, name, cls.__name__)  # raises for an argument not kept
        if value is None:
            if parameter.default is None:
                continue
            raise ValueError(f"its {name} is None, which a file cannot hold (TOML has no null)")
        data[name] = value
    return data


def optimizer_to_data(optimizer: Any) -> dict[str, Any]:
    """``{"class": name, argument: value, ...}``: what rebuilds ``optimizer`` to the last bit.

    Raises:
        ValueError: A class a file cannot name (neither MLX's nor registered),
            a schedule that is not MLX's, an argument that is not plain data
            or that the class does not keep under its name.
    """
    if not isinstance(optimizer, optim.Optimizer):
        raise ValueError(f"expected an mlx.optimizers optimizer, found {shown(optimizer)}")
    data = _describe(optimizer)
    again = _describe(optimizer_from_data(data))
    if again != data:
        changed = sorted(k for k in set(data) | set(again) if data.get(k) != again.get(k))
        raise ValueError(f"{type(optimizer).__name__} built from its own arguments differs in "
                         f"{', '.join(changed)} (it changes an argument in __init__, or the "
                         f"argument was changed afterwards); as read: "
                         f"{', '.join(f'{k}={shown(data.get(k))}' for k in changed)}")
    return data


def optimizer_from_data(data: Any, where: str = "the optimizer") -> optim.Optimizer:
    """Build the optimizer a ``[group.optimizer]`` table describes.

    Raises:
        ValueError: Not a table, an unknown class, unknown or missing
            arguments, values that are not data, a bad schedule, or arguments
            the class refuses (the message names ``where`` and the fix).
    """
    if not isinstance(data, dict) or not isinstance(data.get(_CLASS_KEY), str):
        raise ValueError(f"{where}: expected a table with a string 'class' (TOML: "
                         f"[group.optimizer] then class = \"AdamW\"), found {shown(data)}")
    try:
        cls = optimizer_class(data[_CLASS_KEY])
        parameters = _parameters(cls)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    name = data[_CLASS_KEY]
    arguments = {key: value for key, value in data.items() if key != _CLASS_KEY}
    for key in arguments:
        if key not in parameters:
            near = difflib.get_close_matches(str(key), list(parameters), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"{where}: {name} takes no argument {shown(key)}{hint} Its "
                             f"arguments: {', '.join(parameters)}")
    missing = [p for p, spec in parameters.items()
               if spec.default is inspect.Parameter.empty and p not in arguments]
    if missing:
        raise ValueError(f"{where}: {name} needs {', '.join(missing)} (e.g. learning_rate = 1e-3)")
    built = {key: _value(value, f"{where}: its {key}") for key, value in arguments.items()}
    try:
        return cls(**built)
    except Exception as err:  # the class's own checks (Lion's betas in [0, 1), ...)
        raise ValueError(f"{where}: {name} refused its arguments: {type(err).__name__}: "
                         f"{err}") from None


def _value(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return schedule_from_data(value, where)
    if value is None:
        raise ValueError(f"{where}: null is not a value; leave the argument out for its default")
    return plain_value(value, where)
