"""Unflatten dotted keys into a tree: ``mlx.utils.tree_unflatten``, in one pass, bounded.
"""

from __future__ import annotations

from typing import Any

__all__ = ["unflatten", "ListIndexTooLarge", "MAX_LIST_INDEX"]

#: Largest list index a key may hold (``layers.N``): MLX's
#: ``tree_unflatten`` builds N empty entries, so a corrupt key must not ask for billions.
MAX_LIST_INDEX = 2**20


def unflatten(items: list[tuple[str, Any]], index: dict[str, Any] | None = None) -> Any:
    """``mlx.utils.tree_unflatten`` for dotted keys (a checkpoint's), in one pass over them.

    Lists are made of keys that are all decimal digits, gaps filled with
    ``{}`` as MLX does. MLX's recursive version costs seconds at 100,000 keys.

    Args:
        items: ``(key, value)`` pairs.
        index (dict, optional): Receives, for each key prefix, the dict or
            list the tree holds there (``"layers.1"`` -> ``{'w': 1}``).

    Raises:
        ValueError: A key is also the parent of another (``a`` and ``a.b``),
            or two keys name one list item (``a.1`` and ``a.01``): no tree
            flattens to that. :class:`ListIndexTooLarge` (a ValueError): a
            key indexes a list past :data:`MAX_LIST_INDEX`.
    """
    if len(items) == 1 and items[0][0] == "":
        return items[0][1]
    root: dict = {}
    # Each dict made, by the key prefix that leads to it: a key finds its parent in one
    # look-up (its siblings made it) rather than walking down from the root.
    nodes: dict[str, Any] = {} if index is None else index
    numbered: dict[str | None, dict] = {}  # the dicts with a child named by digits: lists maybe
    for key, value in items:
        prefix, dot, leaf = key.rpartition(".")
        node = root if not dot else nodes.get(prefix)
        if node is None:
            node = _node_at(prefix, root, nodes, numbered)
        if leaf in node:
            raise ValueError(f"key {key[:80]!r} is also the parent of other keys")
        node[leaf] = value
        if leaf.isdecimal():
            numbered[prefix if dot else None] = node
    return _lists_of(root, nodes, numbered)


def _node_at(prefix: str, root: dict, nodes: dict, numbered: dict) -> dict:
    """The dict at ``prefix``, made with the parents it lacks (recursion as deep as the key;
    the checkpoint reader refuses keys of 64 parts or more first)."""
    up, dot, name = prefix.rpartition(".")
    parent = root if not dot else nodes.get(up)
    if parent is None:
        parent = _node_at(up, root, nodes, numbered)
    if name in parent:
        raise ValueError(f"key {prefix[:80]!r} holds a value and is also the parent of "
                         "other keys")
    node = parent[name] = nodes[prefix] = {}
    if name.isdecimal():
        numbered[up if dot else None] = parent
    return node


def _lists_of(root: dict, nodes: dict, numbered: dict) -> Any:
    # Deepest first, so that a list's items are final when it is made.
    for prefix in sorted(numbered, key=lambda p: -1 if p is None else p.count("."),
                         reverse=True):
        node = numbered[prefix]
        if not all(key.isdecimal() for key in node):
            continue
        indices = sorted((_list_index(prefix, key), key) for key in node)
        for (i, first), (j, second) in zip(indices, indices[1:]):
            if i == j:
                where = f"under {prefix[:80]!r}" if prefix is not None else "at the top"
                raise ValueError(f"keys {first[:40]!r} and {second[:40]!r} {where} name the "
                                 "same list item")
        items: list = [{} for _ in range(indices[-1][0] + 1)]
        for index, key in indices:
            items[index] = node[key]
        if prefix is None:
            return items
        parent_prefix, dot, name = prefix.rpartition(".")
        (nodes[parent_prefix] if dot else root)[name] = nodes[prefix] = items
    return root


class ListIndexTooLarge(ValueError):
    """A key that indexes a list past :data:`MAX_LIST_INDEX` (``layers.99999999``).

    Attributes:
        key (str): The key up to that index.
    """

    def __init__(self, key: str):
        super().__init__(f"key {key[:80]!r} indexes a list past {MAX_LIST_INDEX}")
        self.key = key


_INDEX_DIGITS = len(str(MAX_LIST_INDEX))


def _list_index(prefix: str | None, key: str) -> int:
    """``int(key)``, refused past MAX_LIST_INDEX before a list that long is made (and
    before ``int`` reads thousands of digits)."""
    if len(key.lstrip("0")) <= _INDEX_DIGITS:
        index = int(key)
        if index <= MAX_LIST_INDEX:
            return index
    raise ListIndexTooLarge(key if prefix is None else f"{prefix}.{key}")

