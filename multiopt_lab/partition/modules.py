"""Which modules hold each parameter: the class names rules read as ``module`` and ``modules``.

A parameter tree (``model.parameters()``) says where a parameter sits but
not what holds it; the model does. :func:`module_chains` walks the model
along each path once, sharing the walk between paths with a common prefix,
so the cost is linear in the total length of the paths.

Example:
    >>> import mlx.nn as nn
    >>> model = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    >>> module_chains(model, ["layers.0.weight", "layers.1.bias"])
    [('Sequential', 'Linear'), ('Sequential', 'LayerNorm')]
"""

from __future__ import annotations

from typing import Any, Iterable

import mlx.nn as nn

__all__ = ["module_chains", "family"]

# QuantizedLinear, LoRALinear, SwitchLinear and QuantizedSwitchLinear are all linear
# layers stored or adapted another way: a class belongs to the family its name ends with.
_FAMILIES = ("Linear", "Embedding", "Norm", "Conv1d", "Conv2d", "Conv3d")


def module_chains(model: nn.Module, paths: Iterable[str]) -> list[tuple[str, ...]]:
    """For each path, the class names of the modules from ``model`` down to the one holding it.

    Args:
        model (nn.Module): The model the paths come from (``tree_flatten`` keys
            of its parameters, or of gradients with the same structure).
        paths (Iterable[str]): Dotted parameter paths.

    Returns:
        list[tuple[str, ...]]: One tuple per path, outermost first; its last
        entry is the class of the module that holds the parameter.

    Raises:
        ValueError: A path does not lead to anything in ``model``.

    Example:
        >>> import mlx.nn as nn
        >>> module_chains(nn.Linear(2, 3), ["weight"])
        [('Linear',)]
    """
    memo: dict[str, tuple[Any, tuple[str, ...]]] = {"": (model, (type(model).__name__,))}
    return [_entry(path.rpartition(".")[0], memo, path, model)[1] for path in paths]


def _entry(prefix: str, memo: dict, path: str, model: nn.Module) -> tuple[Any, tuple[str, ...]]:
    entry = memo.get(prefix)
    if entry is not None:
        return entry
    missing = []
    while entry is None:  # climb to the nearest prefix already walked
        missing.append(prefix)
        prefix = prefix.rpartition(".")[0]
        entry = memo.get(prefix)
    node, chain = entry
    for prefix in reversed(missing):
        key = prefix.rpartition(".")[2]
        node = _child(node, key, path, model)
        if isinstance(node, nn.Module):
            chain = chain + (type(node).__name__,)
        memo[prefix] = entry = (node, chain)
    return entry


def _child(node: Any, key: str, path: str, model: nn.Module) -> Any:
    try:
        if isinstance(node, (list, tuple)):
            return node[int(key)]
        return node[key]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ValueError(
            f"parameter {path!r} is not in the model given ({type(model).__name__}): it has no "
            f"{key!r} there; pass the model these parameters (or gradients) belong to") from None


def family(class_name: str | None) -> str | None:
    """What kind of layer a class is, whatever its storage: ``"Linear"`` for
    ``QuantizedLinear``, ``LoRALinear``, ``SwitchLinear``; ``"Norm"`` for
    ``RMSNorm`` and ``LayerNorm``; other classes are their own family.

    Example:
        >>> family("QuantizedSwitchLinear"), family("RMSNorm"), family("MoEGate")
        ('Linear', 'Norm', 'MoEGate')
    """
    if class_name is None:
        return None
    for suffix in _FAMILIES:
        if class_name.endswith(suffix):
            return "Norm" if suffix == "Norm" else suffix
    return class_name

