"""Bit-exact agreement between ranks: broadcast a tree, check it is in sync.

The mixin behind :meth:`DataParallel.broadcast
<multiopt_lab.distributed.data_parallel.DataParallel.broadcast>` and
:meth:`~multiopt_lab.distributed.data_parallel.DataParallel.check_in_sync`. Arrays
travel as raw bytes (one ``all_sum`` where every rank but rank 0 adds
zeros), so nothing is rounded: ``-0.0`` and NaN payloads arrive unchanged.
"""

from __future__ import annotations

import hashlib
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten, tree_map


__all__ = ["OutOfSyncError", "SyncMixin"]


class OutOfSyncError(RuntimeError):
    """Raised on every rank when a tree differs between ranks.

    Example:
        >>> isinstance(OutOfSyncError("parameters differ on rank 1"), RuntimeError)
        True
    """


class SyncMixin:
    """Bit-exact broadcast and comparison for :class:`DataParallel
    <multiopt_lab.distributed.data_parallel.DataParallel>` (which supplies ``group``,
    ``size`` and ``is_main``).

    Example:
        >>> from multiopt_lab.distributed.data_parallel import DataParallel
        >>> issubclass(DataParallel, SyncMixin)
        True
    """

    def broadcast(self, tree: Any) -> Any:
        """Rank 0's copy of ``tree`` on every rank, bit for bit.

        Use it once before training so that ranks that initialised their
        model differently start from the same parameters. The arrays travel
        as raw bytes, so ``-0.0`` and NaN payloads survive unchanged.

        Example:
            >>> import mlx.nn as nn
            >>> from multiopt_lab.distributed.data_parallel import DataParallel
            >>> model = nn.Linear(2, 2)
            >>> model.update(DataParallel().broadcast(model.parameters()))
            Linear(input_dims=2, output_dims=2, bias=True)
        """
        flat = _array_leaves(tree)
        if self.size == 1:
            return tree
        self._check_same_structure(flat, "tree")
        if not flat:
            return tree
        received = iter(self._broadcast_leaves([leaf for _, leaf in flat]))
        # tree_map walks leaves in tree_flatten's order; keeping the tree
        # itself (not re-building it) preserves empty dicts and tuples.
        return tree_map(
            lambda leaf: next(received) if isinstance(leaf, mx.array) else leaf, tree
        )

    def check_in_sync(self, tree: Any, what: str = "tree") -> None:
        """Raise :class:`OutOfSyncError` on every rank if ``tree`` differs
        anywhere from rank 0's, bit for bit.

        Args:
            tree: e.g. ``model.parameters()`` or ``optimizer.state``.
            what (str, optional): What to call the tree in the error.

        Example:
            >>> from multiopt_lab.distributed.data_parallel import DataParallel
            >>> DataParallel().check_in_sync({"w": mx.ones(2)}, "parameters")
        """
        flat = _array_leaves(tree)
        if self.size == 1:
            return
        self._check_same_structure(flat, what)
        if not flat:
            return
        mine = [leaf for _, leaf in flat]
        reference = self._broadcast_leaves(mine)
        differs = mx.stack(
            [mx.any(_as_bytes([a]) != _as_bytes([b])) for a, b in zip(mine, reference)]
        ).astype(mx.int32)
        table = mx.distributed.all_gather(differs, group=self.group)
        table = table.reshape(self.size, len(flat)).tolist()
        bad = {r: [flat[i][0] for i, d in enumerate(row) if d] for r, row in enumerate(table)}
        bad = {r: paths for r, paths in bad.items() if paths}
        if bad:
            lines = [
                f"rank {r}: {len(p)} path(s), e.g. {', '.join(p[:5])}"
                for r, p in bad.items()
            ]
            raise OutOfSyncError(
                f"Expected the {what} to be identical on all {self.size} ranks, "
                "found differences from rank 0's:\n  " + "\n  ".join(lines) + "\n"
                "Average the gradients before every update and start from "
                "broadcast parameters (DataParallel.broadcast)."
            )

    def _broadcast_leaves(self, leaves: list[mx.array]) -> list[mx.array]:
        """Rank 0's leaves on every rank: one all_sum of raw bytes, where the
        other ranks add zeros (integer addition, so nothing is rounded)."""
        data = _as_bytes(leaves)
        if not self.is_main:
            data = mx.zeros_like(data)
        return _from_bytes(mx.distributed.all_sum(data, group=self.group), leaves)

    def _check_same_structure(self, flat: list, what: str) -> None:
        """Raise on every rank unless all ranks hold the same paths, shapes
        and dtypes (a collective on mismatched arrays would fail or hang)."""
        layout = repr([(path, leaf.shape, str(leaf.dtype)) for path, leaf in flat])
        digest = int.from_bytes(hashlib.sha256(layout.encode()).digest()[:3], "big")
        digests = mx.distributed.all_gather(mx.array([digest], dtype=mx.int32), group=self.group)
        digests = digests.tolist()
        if len(set(digests)) > 1:
            raise OutOfSyncError(
                f"Expected the {what} to have the same paths, shapes and dtypes "
                f"on all {self.size} ranks, found {len(set(digests))} different "
                f"layouts (fingerprint per rank: {digests}). Build the same "
                "model and optimizer on every rank."
            )


def _array_leaves(tree: Any) -> list[tuple[str, mx.array]]:
    """The (path, array) pairs of a tree; other leaves are not communicated."""
    return [(k, v) for k, v in tree_flatten(tree) if isinstance(v, mx.array)]


def _as_bytes(leaves: list[mx.array]) -> mx.array:
    """All leaves' raw bytes, concatenated into one uint8 vector."""
    return mx.concatenate([mx.contiguous(leaf).reshape(-1).view(mx.uint8) for leaf in leaves])


def _from_bytes(data: mx.array, like: list[mx.array]) -> list[mx.array]:
    """Cut a uint8 vector made by :func:`_as_bytes` back into arrays like ``like``."""
    out, offset = [], 0
    for leaf in like:
        n = leaf.size * leaf.dtype.size
        out.append(data[offset : offset + n].view(leaf.dtype).reshape(leaf.shape))
        offset += n
    return out
