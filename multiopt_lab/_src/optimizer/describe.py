"""What an optimizer is, in words and as data: its class and main hyperparameters.

The legend, the editor and the tree show :func:`describe_optimizer` and
:func:`short_optimizer`; a run's metadata in a History holds
:func:`optimizer_metadata`. All of them read the same hyperparameters.

Example:
    >>> import mlx.optimizers as optim
    >>> describe_optimizer(optim.SGD(learning_rate=0.1, momentum=0.9))
    'SGD(lr=0.1, momentum=0.9)'
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from multiopt_lab._src.mlx_internals import schedules

__all__ = ["describe_optimizer", "short_optimizer", "optimizers_of", "hyperparameters",
           "optimizer_metadata", "rule_text"]

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

    ``lr`` is the learning rate; a scheduled one reads ``schedule(<current value>)``.
    Momentum and weight decay are left out when zero.

    Args:
        optimizer (mlx.optimizers.Optimizer): Any MLX optimizer.

    Example:
        >>> import mlx.optimizers as optim
        >>> hyperparameters(optim.Adam(learning_rate=1e-3))
        {'lr': '0.001', 'betas': '(0.9, 0.999)', 'eps': '1e-08'}
    """
    found = {}
    state = getattr(optimizer, "state", None)
    if isinstance(state, dict) and "learning_rate" in state:
        value: Any = _number(state["learning_rate"])
        scheduled = "learning_rate" in schedules(optimizer)
        found["lr"] = f"schedule({value})" if scheduled else value
    for attribute, shown, show_zero in _MAIN:
        value = getattr(optimizer, attribute, None)
        if value is None or callable(value):
            continue
        if not show_zero and not isinstance(value, (list, tuple)) and _number(value) in ("0", "0.0"):
            continue
        found[shown] = _number(value)
    return found


def describe_optimizer(optimizer) -> str:
    """``AdamW(lr=0.001, betas=(0.9, 0.999), weight_decay=0.01, eps=1e-08)``.

    Args:
        optimizer (mlx.optimizers.Optimizer | None): The optimizer; ``None`` gives ``""``.

    Example:
        >>> import mlx.optimizers as optim
        >>> describe_optimizer(optim.Muon(learning_rate=0.02))
        'Muon(lr=0.02, momentum=0.95, weight_decay=0.01)'
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

    Example:
        >>> import mlx.optimizers as optim
        >>> short_optimizer(optim.Muon(learning_rate=0.02))
        'Muon lr=0.02 mom=0.95 wd=0.01'
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

    Example:
        >>> optimizers_of(None, 2) is None
        True
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

    Example:
        >>> from multiopt_lab import rule
        >>> rule_text(rule("ndim == 2")), rule_text(len)
        ('ndim == 2', 'len')
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

    Example:
        >>> import mlx.optimizers as optim
        >>> optimizer_metadata(optim.SGD(0.5))
        {'optimizer': 'SGD', 'optimizers': [{'class': 'SGD', 'learning_rate': 0.5}]}
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
