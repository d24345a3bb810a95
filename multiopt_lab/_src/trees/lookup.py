"""What a tree holds at a dotted path (``layers.0.attn.q``), or None when it holds nothing.

A path's parts index dicts by key and lists and tuples by position, as
``tree_flatten`` wrote them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["child", "node_at", "nodes_at"]


def child(node: Any, key: str) -> Any:
    """``node[key]`` (a list indexed by ``int(key)``); None when there is nothing.
    """
    if type(node) is dict:
        return node.get(key)
    if node is None:
        return None
    try:
        return node[int(key)] if isinstance(node, (list, tuple)) else node[key]
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def node_at(tree: Any, path: str) -> Any:
    """What ``tree`` holds at ``path`` (``tree`` itself for ``""``); None when nothing.
    """
    node = tree
    if path:
        for key in path.split("."):
            node = child(node, key)
            if node is None:
                return None
    return node


_UNSEEN = object()


def nodes_at(tree: Any, paths: list[str]) -> dict[str, Any]:
    """:func:`node_at` for each path, in order; a parent shared by several paths is
    looked up once (the paths of one layer's parameters share it).
    """
    found: dict[str, Any] = {}
    parents: dict[str, Any] = {}  # prefix -> what is there (None: nothing)
    for path in paths:
        prefix, dot, name = path.rpartition(".")
        parent = parents.get(prefix, _UNSEEN) if dot else tree
        if parent is _UNSEEN:
            parent = _parent_at(tree, prefix, parents)
        found[path] = child(parent, name) if path else tree
    return found


def _parent_at(tree: Any, prefix: str, parents: dict[str, Any]) -> Any:
    """What ``tree`` holds at ``prefix`` (None: nothing), remembered in ``parents`` with
    the prefixes above it."""
    chain, node = [], _UNSEEN
    while node is _UNSEEN:
        chain.append(prefix)
        prefix, dot, _ = prefix.rpartition(".")
        node = parents.get(prefix, _UNSEEN) if dot else tree
    for part in reversed(chain):
        node = parents[part] = child(node, part[part.rfind(".") + 1:])
    return node
