"""A parameter table's structure (paths, shapes, dtypes) as one hashable key.
"""

from __future__ import annotations

import threading
import weakref

__all__ = ["StructureKey"]


class StructureKey:
    """A hashable fingerprint of a tree's paths, shapes and dtypes.

    Hashing a tuple of ten thousand triples costs about a millisecond each
    time; this wrapper hashes once and compares by identity first.
    """

    __slots__ = ("items", "_hash", "__weakref__")

    def __init__(self, items: tuple):
        self.items = items
        self._hash = hash(items)

    @classmethod
    def shared(cls, items: tuple) -> StructureKey:
        """A key for ``items``: the one already in use for equal items, if any.

        Two tables of one model (the rule editor's and the tree's) then hold the
        same key object, and every cache lookup between them compares by
        identity instead of comparing every path.
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
_SHARED: weakref.WeakValueDictionary[int, StructureKey] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()
