"""What an optimizer is, in words and as data: its class and main hyperparameters.

The legend, the editor and the tree show :func:`describe_optimizer` and
:func:`short_optimizer`; a run's metadata in a History holds
:func:`optimizer_metadata`. All of them read the same hyperparameters.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from multiopt_lab._src.mlx_internals import schedule_arguments, schedules

__all__ = ["describe_optimizer", "short_optimizer", "optimizers_of", "hyperparameters",
           "optimizer_metadata", "rule_text", "schedule_text"]

# What the compact form keeps, and how it abbreviates it.
_SHORT = (("lr", "lr"), ("momentum", "mom"), ("weight_decay", "wd"))

# (attribute, shown as, shown when zero)
_MAIN = (("momentum", "momentum", False), ("betas", "betas", True),
         ("weight_decay", "weight_decay", False), ("eps", "eps", True))


def _number(value) -> str:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_number(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def hyperparameters(optimizer) -> dict[str, str]:
    """The main hyperparameters present on ``optimizer``, formatted.

    ``lr`` is the learning rate; a scheduled one reads as the schedule MLX made it with
    (``cosine_decay(0.001, 100, 0)``), not its current value.
    Momentum and weight decay are left out when zero.

    Args:
        optimizer (mlx.optimizers.Optimizer): Any MLX optimizer.
    """
    found = {}
    state = getattr(optimizer, "state", None)
    schedule = schedules(optimizer).get("learning_rate")
    if schedule is not None:
        # Never the current value: while a cell trains it is an array the training thread made
        # and has not evaluated yet, which another thread (the editor's) cannot read.
        found["lr"] = schedule_text(schedule)
    elif isinstance(state, dict) and "learning_rate" in state:
        found["lr"] = _number(state["learning_rate"])
    for attribute, shown, show_zero in _MAIN:
        value = getattr(optimizer, attribute, None)
        if value is None or callable(value):
            continue
        if not show_zero and not isinstance(value, (list, tuple)) and _number(value) in ("0", "0.0"):
            continue
        found[shown] = _number(value)
    return found


def schedule_text(schedule: Any) -> str:
    """A learning-rate schedule as the call that made it: ``cosine_decay(0.001, 100, 0)``.

    One of MLX's factories shows its arguments (nested for ``join_schedules``); any other
    function shows its name, as ``schedule(name)``.
    """
    made = schedule_arguments(schedule)
    if made is None:
        return f"schedule({getattr(schedule, '__name__', type(schedule).__name__)})"
    name, arguments = made
    shown = []
    for value in arguments.values():
        if isinstance(value, (list, tuple)) and any(callable(v) for v in value):
            shown.append("[" + ", ".join(schedule_text(v) for v in value) + "]")
        elif isinstance(value, (list, tuple)):
            shown.append("[" + ", ".join(_number(v) for v in value) + "]")
        else:
            shown.append(_number(value))
    return f"{name}({', '.join(shown)})"


def describe_optimizer(optimizer) -> str:
    """``AdamW(lr=0.001, betas=(0.9, 0.999), weight_decay=0.01, eps=1e-08)``.

    Args:
        optimizer (mlx.optimizers.Optimizer | None): The optimizer; ``None`` gives ``""``.
    """
    if optimizer is None:
        return ""
    params = ", ".join(f"{k}={v}" for k, v in hyperparameters(optimizer).items())
    return f"{type(optimizer).__name__}({params})"


def short_optimizer(optimizer) -> str:
    """``AdamW lr=0.001 wd=0.01``: the class and the hyperparameters people tune most.

    For narrow columns (the legend's HTML); :func:`describe_optimizer` gives
    the whole description (the legend shows it as a tooltip).

    Args:
        optimizer (mlx.optimizers.Optimizer | None): The optimizer; ``None`` gives ``""``.
    """
    if optimizer is None:
        return ""
    found = hyperparameters(optimizer)
    parts = [f"{short}={found[key]}" for key, short in _SHORT if key in found]
    return " ".join([type(optimizer).__name__, *parts])


def optimizers_of(source, n_groups: int):
    """The list of sub-optimizers, one per group, or ``None`` when ``source`` is ``None``.

    Args:
        source (MultiOptimizer | Sequence[Optimizer] | None): A multi-optimizer (ours or
            MLX's) or the optimizers themselves.
        n_groups (int): Groups in the assignment the legend describes.

    Raises:
        ValueError: When the number of optimizers differs from ``n_groups``.
    """
    if source is None:
        return None
    optimizers = list(getattr(source, "optimizers", source))
    if len(optimizers) != n_groups:
        raise ValueError(
            f"Expected one optimizer per group ({n_groups}), found {len(optimizers)}; "
            "pass the MultiOptimizer whose rules produced the assignment."
        )
    return optimizers


def _scalar_state(optimizer) -> dict[str, float]:
    found: dict[str, float] = {}
    for key, value in optimizer.state.items():
        if key != "step" and isinstance(value, mx.array) and value.ndim == 0:
            found[key] = value.item()  # type: ignore[assignment]  # a real scalar: mlx's item() is typed for any dtype
    return found


def rule_text(rule: Any) -> str:
    """A rule as a user wrote it: its expression, or the function's name.
    """
    text = getattr(rule, "text", None)
    if isinstance(text, str):
        return text
    return getattr(rule, "__qualname__", None) or repr(rule)


def optimizer_metadata(optimizer) -> dict[str, Any]:
    """JSON-friendly facts about an optimizer, for a run's metadata in a History.

    For a multi-optimizer: the group ``labels``, the ``rules`` (their text,
    or the function's name) and one entry per sub-optimizer with its scalar
    hyperparameters (the current learning rate of a schedule included).
    """
    parts = list(getattr(optimizer, "optimizers", None) or [optimizer])
    info: dict[str, Any] = {
        "optimizer": type(optimizer).__name__,
        "optimizers": [{"class": type(o).__name__, **_scalar_state(o)} for o in parts],
    }
    labels = getattr(optimizer, "labels", None)
    if labels is not None:
        info["labels"] = [str(label) for label in labels]
    filters = getattr(optimizer, "filters", None)
    if filters is not None:
        # mlx's MultiOptimizer appends its own catch-all for the fallback.
        info["rules"] = [rule_text(rule) for rule in list(filters)[: len(parts) - 1]]
    return info
