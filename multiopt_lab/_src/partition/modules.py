"""Which modules hold each parameter: the class names rules read as ``module`` and ``modules``.

A parameter tree (``model.parameters()``) says where a parameter sits but
not what holds it; the model does. :func:`flatten_with_modules` walks the
tree and the model together once; :func:`module_chains` walks the model
along paths, sharing the walk between paths with a common prefix. Both cost
time linear in the size of the tree, and intern each distinct chain of
classes once.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Iterable

import mlx.nn as nn

__all__ = ["ChainIndex", "flatten_with_modules", "module_chains", "family"]

# QuantizedLinear, LoRALinear, SwitchLinear and QuantizedSwitchLinear are all linear
# layers stored or adapted another way: a class belongs to the family its name ends with.
_FAMILIES = ("Linear", "Embedding", "Norm", "Conv1d", "Conv2d", "Conv3d")


class ChainIndex:
    """Interned chains of class names: each distinct chain is built and stored once.
    """

    def __init__(self, root_name: str):
        self._ids: dict[tuple[int, str], int] = {}
        self.chains: list[tuple[str, ...]] = []
        self.root = self.child(-1, root_name)

    def child(self, parent: int, name: str) -> int:
        """The id of ``chains[parent] + (name,)`` (``parent = -1``: a chain of one)."""
        key = (parent, name)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self.chains)
            self.chains.append((self.chains[parent] if parent >= 0 else ()) + (name,))
        return found


def flatten_with_modules(tree: Any, model: nn.Module) -> tuple[list, list[int], list]:
    """``flatten_tree(tree)`` and, for each leaf, the chain of classes holding it in ``model``.

    One walk down ``tree`` and ``model`` together (``tree`` has the model's
    structure: its parameters, or gradients of them).

    Returns:
        tuple: ``(items, chain_ids, chains)``: the ``(path, leaf)`` pairs,
        one chain id per leaf, and the chains by id.
    """
    index = ChainIndex(type(model).__name__)
    items: list = []
    ids: list[int] = []
    if isinstance(tree, (dict, list, tuple)):
        _walk(tree, model, index.root, index, "", items, ids, model)
    else:
        items.append(("", tree))
        ids.append(index.root)
    return items, ids, index.chains


# Module-level recursion (no self-referencing closure that would keep the arrays alive).
def _walk(tree, node, chain: int, index: ChainIndex, prefix: str, items: list, ids: list,
          model: nn.Module) -> None:
    for key, value in tree.items() if isinstance(tree, dict) else enumerate(tree):
        if isinstance(value, (dict, list, tuple)):
            if not value:  # a parameterless module: flatten_tree drops it too
                continue
            try:
                child = node[key]
            except (KeyError, IndexError, TypeError):
                child = _child(node, str(key), f"{prefix}{key}", model)  # raises, naming the path
            sub = index.child(chain, type(child).__name__) if isinstance(child, nn.Module) else chain
            _walk(value, child, sub, index, f"{prefix}{key}.", items, ids, model)
        else:
            items.append((f"{prefix}{key}", value))
            ids.append(chain)


def module_chains(model: nn.Module, paths: Iterable[str]) -> tuple[list[int], list]:
    """For each path, the chain of class names from ``model`` down to the module holding it.

    For paths without their tree (:func:`flatten_with_modules` is faster with it):
    walks ``model`` once per distinct prefix.

    Args:
        model (nn.Module): The model the paths come from (``tree_flatten`` keys
            of its parameters, or of gradients with the same structure).
        paths (Iterable[str]): Dotted parameter paths.

    Returns:
        tuple: ``(chain_ids, chains)``: one id per path, and the chains by id
        (outermost class first, the holder's last).

    Raises:
        ValueError: A path does not lead to anything in ``model``.
    """
    index = ChainIndex(type(model).__name__)
    memo: dict[str, tuple[Any, int]] = {"": (model, index.root)}
    ids = [_entry(path.rpartition(".")[0], memo, path, model, index)[1] for path in paths]
    return ids, index.chains


def _entry(prefix: str, memo: dict, path: str, model: nn.Module, index: ChainIndex):
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
        node = _child(node, prefix.rpartition(".")[2], path, model)
        if isinstance(node, nn.Module):
            chain = index.child(chain, type(node).__name__)
        memo[prefix] = entry = (node, chain)
    return entry


def _child(node: Any, key: str, path: str, model: nn.Module) -> Any:
    try:
        if isinstance(node, (list, tuple)):
            return node[int(key)]
        return node[key]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ValueError(
            f"the path {path!r} is not in the model given ({type(model).__name__}): it has no "
            f"{key!r} there; pass the model these parameters (or gradients) belong to") from None


def family(class_name: str | None) -> str | None:
    """What kind of layer a class is, whatever its storage: ``"Linear"`` for
    ``QuantizedLinear``, ``LoRALinear``, ``SwitchLinear``; ``"Norm"`` for
    ``RMSNorm`` and ``LayerNorm``; other classes are their own family.
    """
    if class_name is None:
        return None
    for suffix in _FAMILIES:
        if class_name.endswith(suffix):
            return "Norm" if suffix == "Norm" else suffix
    return class_name

