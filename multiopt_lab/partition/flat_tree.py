"""Flattening helpers under :class:`~multiopt_lab.partition.table.ParameterTable`.

Example:
    >>> flatten_tree({"a": [1, {"b": 2}]})
    [('a.0', 1), ('a.1.b', 2)]
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

__all__ = ["dtype_name", "flatten_tree", "flatten_columns", "StructureKey"]

_DTYPE_NAMES: dict[Any, str] = {}


def dtype_name(dtype: Any) -> str:
    """The short name of an MLX or NumPy dtype.

    Example:
        >>> import mlx.core as mx
        >>> dtype_name(mx.bfloat16)
        'bfloat16'
    """
    try:
        return _DTYPE_NAMES[dtype]
    except (KeyError, TypeError):
        name = str(getattr(dtype, "name", None) or dtype).rsplit(".", 1)[-1]
        try:
            _DTYPE_NAMES[dtype] = name
        except TypeError:  # an unhashable dtype-like object: just don't cache it
            pass
        return name


def flatten_tree(tree: Any) -> list[tuple[str, Any]]:
    """``mlx.utils.tree_flatten(tree)``: same keys, same order, faster.

    Lists and tuples contribute their index, dicts their keys; every other
    object is a leaf. Empty containers (parameterless modules) vanish.

    Example:
        >>> flatten_tree({"layers": [{"w": 1}, {}, {"w": 2}]})
        [('layers.0.w', 1), ('layers.2.w', 2)]
    """
    out: list[tuple[str, Any]] = []
    if isinstance(tree, (dict, list, tuple)):
        _flatten_into(tree, "", out)
    else:
        out.append(("", tree))
    return out


def flatten_columns(tree: Any) -> tuple[list[str], list[Any]]:
    """:func:`flatten_tree` as two lists, the paths and the leaves (no pair per leaf).

    Example:
        >>> flatten_columns({"a": [1, {"b": 2}]})
        (['a.0', 'a.1.b'], [1, 2])
    """
    paths: list[str] = []
    leaves: list[Any] = []
    if isinstance(tree, (dict, list, tuple)):
        _columns_into(tree, "", paths, leaves)
    else:
        paths.append("")
        leaves.append(tree)
    return paths, leaves


def _columns_into(node: Any, prefix: str, paths: list, leaves: list) -> None:
    for key, item in node.items() if isinstance(node, dict) else enumerate(node):
        if isinstance(item, (dict, list, tuple)):
            _columns_into(item, f"{prefix}{key}.", paths, leaves)
        else:
            paths.append(f"{prefix}{key}")
            leaves.append(item)


def _flatten_into(node: Any, prefix: str, out: list) -> None:
    # Module-level recursion: a self-calling nested function forms a reference
    # cycle with its closure and would keep the arrays alive until a GC pass.
    for key, item in node.items() if isinstance(node, dict) else enumerate(node):
        if isinstance(item, (dict, list, tuple)):
            _flatten_into(item, f"{prefix}{key}.", out)
        else:
            out.append((f"{prefix}{key}", item))


class StructureKey:
    """A hashable fingerprint of a tree's paths, shapes and dtypes.

    Hashing a tuple of ten thousand triples costs about a millisecond each
    time; this wrapper hashes once and compares by identity first.

    Example:
        >>> items = (("w",), (0,), (((2,), "float32"),))
        >>> StructureKey(items) == StructureKey(tuple(items))
        True
    """

    __slots__ = ("items", "_hash", "__weakref__")

    def __init__(self, items: tuple):
        self.items = items
        self._hash = hash(items)

    @classmethod
    def shared(cls, items: tuple) -> "StructureKey":
        """A key for ``items``: the one already in use for equal items, if any.

        Two tables of one model (the rule editor's and the tree's) then hold the
        same key object, and every cache lookup between them compares by
        identity instead of comparing every path.

        Example:
            >>> items = (("w",), (0,), (((2,), "float32"),))
            >>> StructureKey.shared(items) is StructureKey.shared(tuple(items))
            True
        """
        key = cls(items)
        with _SHARED_LOCK:
            found = _SHARED.get(key._hash)
            if found is not None and found == key:
                return found
            _SHARED[key._hash] = key
        return key

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, StructureKey):
            return NotImplemented
        return self._hash == other._hash and self.items == other.items

    def __repr__(self) -> str:
        return f"StructureKey({len(self.items[0])} parameters, hash={self._hash:#x})"


# hash -> the key in use with that hash (a key lives as long as a table holds it).
_SHARED: "weakref.WeakValueDictionary[int, StructureKey]" = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()
