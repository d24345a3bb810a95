"""Checks of the arguments of public entry points: what was expected, what was found, the fix.

Every public function and class of the package checks the kind of each
argument it is given here, before it uses any, so that a wrong argument
(``LabCallback(optimizer, model, history="run.csv")``, a parameter dict
where the model is needed) gets one clear ``TypeError`` naming the call,
the argument, what it must be, what it is, and what to pass instead,
rather than an ``AttributeError`` from deep inside. Values of the right
kind but out of range (``ratio=inf``) get a ``ValueError`` the same way.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
from typing import Any
from collections.abc import Callable

import mlx.nn as nn
import mlx.optimizers as optim

__all__ = ["checked", "optional", "number", "is_flag", "is_text", "is_path", "function", "kind",
           "found", "check_kind", "check_model", "check_optimizer", "check_multi_optimizer",
           "check_number", "check_flag", "check_callable", "check_path", "check_text"]


Check = Callable[[Any, str, str], Any]


def checked(**checks: Check) -> Callable:
    """Decorate a public function (or ``__init__``) to check the named arguments it is given.

    Each check is called as ``check(value, where, name)`` before the function
    runs, for the arguments the caller passed (defaults are not checked);
    ``where`` is ``"name()"`` of the function or class. The checks are the
    ``check_*`` functions here, or :func:`optional`, :func:`number`,
    :func:`is_flag`, :func:`is_text`, :func:`is_path`, :func:`function`, :func:`kind`.
    """
    def decorate(function: Callable) -> Callable:
        signature = inspect.signature(function)
        unknown = set(checks) - set(signature.parameters)
        if unknown:
            raise TypeError(f"checked(): {function.__qualname__} has no argument {sorted(unknown)}")
        owner, _, name = function.__qualname__.rpartition(".")
        where = f"{owner.rpartition('.')[2] if name == '__init__' else name}()"

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind_partial(*args, **kwargs)
            except TypeError:
                return function(*args, **kwargs)  # Python's own message for a wrong call
            for argument, value in bound.arguments.items():
                check = checks.get(argument)
                if check is not None:
                    check(value, where, argument)
            return function(*args, **kwargs)

        return wrapper

    return decorate


def optional(check: Check) -> Check:
    """``check``, with None accepted.
    """
    def check_or_none(value: Any, where: str, name: str) -> Any:
        return None if value is None else check(value, where, name)

    return check_or_none


def number(**bounds: Any) -> Check:
    """A :func:`check_number` with these bounds, as a check.
    """
    return lambda value, where, name: check_number(value, where, name, **bounds)


def is_flag(value: Any, where: str, name: str) -> bool:
    """:func:`check_flag` as a check.
    """
    return check_flag(value, where, name)


def is_text(value: Any, where: str, name: str) -> str:
    """:func:`check_text` as a check.
    """
    return check_text(value, where, name)


def is_path(value: Any, where: str, name: str) -> Any:
    """:func:`check_path` as a check.
    """
    return check_path(value, where, name)


def function(expected: str) -> Check:
    """A check that the argument is callable, described as ``expected``.
    """
    return lambda value, where, name: check_callable(value, where, name, expected)


def kind(kinds: type | tuple[type, ...], expected: str, fix: str = "") -> Check:
    """A check that the argument is an instance of ``kinds``, described as ``expected``.
    """
    return lambda value, where, name: check_kind(value, kinds, where, name, expected, fix)


def found(value: Any) -> str:
    """How a wrong argument is shown: its type and the start of its repr.
    """
    try:
        shown = repr(value)
    except Exception:  # a repr that fails says nothing more than the type
        shown = "<unprintable>"
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{type(value).__name__} {shown}"


def _fail(where: str, name: str, expected: str, value: Any, fix: str) -> TypeError:
    return TypeError(f"{where}: {name} must be {expected}, found {found(value)}"
                     + (f"; {fix}" if fix else ""))


def check_kind(value: Any, kinds: type | tuple[type, ...], where: str, name: str,
               expected: str, fix: str = "", *, optional: bool = False) -> Any:
    """``value`` if it is an instance of ``kinds`` (or None when ``optional``); else TypeError.
    """
    if value is None and optional:
        return value
    if isinstance(value, kinds):
        return value
    raise _fail(where, name, expected + (" (or None)" if optional else ""), value, fix)


def check_model(value: Any, where: str, name: str = "model", *, optional: bool = False) -> Any:
    """The model (an ``nn.Module``), or a TypeError saying so.
    """
    fix = ("pass the model itself, not model.parameters()" if isinstance(value, (dict, list))
           else "pass the nn.Module that trains")
    return check_kind(value, nn.Module, where, name, "an mlx.nn.Module (the model itself)", fix,
                      optional=optional)


def check_optimizer(value: Any, where: str, name: str = "optimizer") -> Any:
    """An MLX optimizer (a ``MultiOptimizer`` included), or a TypeError saying so.
    """
    fix = ("pass an optimizer object such as optim.AdamW(1e-3), not its name"
           if isinstance(value, str) else "pass an mlx.optimizers optimizer or a "
           "multiopt_lab.MultiOptimizer")
    return check_kind(value, optim.Optimizer, where, name,
                      "an optimizer (mlx.optimizers.Optimizer)", fix)


def check_multi_optimizer(value: Any, where: str, name: str = "optimizer") -> Any:
    """A multiopt_lab ``MultiOptimizer`` (what widgets edit), or a TypeError saying so.
    """
    if callable(getattr(value, "request_repartition", None)):
        return value
    raise _fail(where, name, "a multiopt_lab MultiOptimizer", value,
                "build one: multiopt_lab.MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], "
                "['ndim == 2'])")


def check_number(value: Any, where: str, name: str, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False, high_open: bool = False,
                 integer: bool = False, optional: bool = False, fix: str = "") -> Any:
    """A finite real number (not a bool) within ``[low, high]`` (an end left out with
    ``low_open`` / ``high_open``); an int when ``integer``. TypeError for another kind,
    ValueError out of range.
    """
    if value is None and optional:
        return value
    kind = numbers.Integral if integer else numbers.Real
    noun = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _fail(where, name, noun + (" (or None)" if optional else ""), value, fix)
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    wanted = ("an integer" if integer else "a finite number") + (
        " " + " and ".join(bounds) if bounds else "")
    number = float(value)
    if (not math.isfinite(number) or (low is not None and (number <= low if low_open else number < low))
            or (high is not None and (number >= high if high_open else number > high))):
        raise ValueError(f"{where}: {name} must be {wanted}, found {value!r}"
                         + (f"; {fix}" if fix else ""))
    return value


def check_flag(value: Any, where: str, name: str) -> bool:
    """``True`` or ``False`` (numpy's bools too), or a TypeError.
    """
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise _fail(where, name, "True or False", value, "")


def check_callable(value: Any, where: str, name: str, expected: str, *,
                   optional: bool = False) -> Any:
    """A callable (or None when ``optional``), or a TypeError describing the signature.
    """
    if (value is None and optional) or callable(value):
        return value
    raise _fail(where, name, expected + (" (or None)" if optional else ""), value, "")


def check_path(value: Any, where: str, name: str) -> Any:
    """A file or folder path (``str`` or ``os.PathLike``), or a TypeError.
    """
    if isinstance(value, (str, os.PathLike)):
        return value
    raise _fail(where, name, "a path (str or os.PathLike)", value, "")


def check_text(value: Any, where: str, name: str, *, optional: bool = False) -> Any:
    """A ``str`` (or None when ``optional``), or a TypeError.
    """
    return check_kind(value, str, where, name, "a str", "", optional=optional)
