"""Short descriptions of MLX optimizers for the legend: name and main hyperparameters.

Example:
    >>> import mlx.optimizers as optim
    >>> describe_optimizer(optim.SGD(learning_rate=0.1, momentum=0.9))
    'SGD(lr=0.1, momentum=0.9)'
"""

from __future__ import annotations

__all__ = ["describe_optimizer", "short_optimizer", "optimizers_of", "hyperparameters"]

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
        value = _number(state["learning_rate"])
        scheduled = "learning_rate" in getattr(optimizer, "_schedulers", {})
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
