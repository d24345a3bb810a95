"""Bit-exact agreement between ranks: broadcast a tree, check it is in sync.

Plain functions of a ``mx.distributed`` group, called by :meth:`DataParallel.broadcast
<multiopt_lab.DataParallel.broadcast>` and
:meth:`~multiopt_lab.DataParallel.check_in_sync`. Arrays
travel as raw bytes (one ``all_sum`` where every rank but rank 0 adds
zeros), so nothing is rounded: ``-0.0`` and NaN payloads arrive unchanged.
:func:`check_same_partition` compares the optimizer's groups, rules and state
layout across ranks (a rank with other rules would train out of sync).
"""

from __future__ import annotations

import hashlib
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten, tree_map


__all__ = ["OutOfSyncError", "broadcast", "check_in_sync", "check_same_structure",
           "check_same_partition", "partition_description"]


class OutOfSyncError(RuntimeError):
    """Raised on every rank when a tree differs between ranks.

    Example:
        >>> isinstance(OutOfSyncError("parameters differ on rank 1"), RuntimeError)
        True
    """


def broadcast(group: Any, tree: Any) -> Any:
    """Rank 0's copy of ``tree`` on every rank of ``group``, bit for bit.
    """
    flat = _array_leaves(tree)
    if group.size() == 1:
        return tree
    check_same_structure(group, flat, "tree")
    if not flat:
        return tree
    received = iter(_broadcast_leaves(group, [leaf for _, leaf in flat]))
    # tree_map walks leaves in tree_flatten's order; keeping the tree
    # itself (not re-building it) preserves empty dicts and tuples.
    return tree_map(lambda leaf: next(received) if isinstance(leaf, mx.array) else leaf, tree)


def check_in_sync(group: Any, tree: Any, what: str = "tree") -> None:
    """Raise :class:`OutOfSyncError` on every rank if ``tree`` differs anywhere from rank
    0's, bit for bit.
    """
    flat = _array_leaves(tree)
    size = group.size()
    if size == 1:
        return
    check_same_structure(group, flat, what)
    if not flat:
        return
    mine = [leaf for _, leaf in flat]
    reference = _broadcast_leaves(group, mine)
    differs = mx.stack(
        [mx.any(_as_bytes([a]) != _as_bytes([b])) for a, b in zip(mine, reference)]
    ).astype(mx.int32)
    table: Any = mx.distributed.all_gather(differs, group=group)  # then its rows as lists
    table = table.reshape(size, len(flat)).tolist()
    bad = {r: [flat[i][0] for i, d in enumerate(row) if d] for r, row in enumerate(table)}
    bad = {r: paths for r, paths in bad.items() if paths}
    if bad:
        lines = [f"rank {r}: {len(p)} path(s), e.g. {', '.join(p[:5])}" for r, p in bad.items()]
        raise OutOfSyncError(
            f"Expected the {what} to be identical on all {size} ranks, "
            "found differences from rank 0's:\n  " + "\n  ".join(lines) + "\n"
            "Average the gradients before every update and start from "
            "broadcast parameters (DataParallel.broadcast)."
        )


def check_same_structure(group: Any, flat: list, what: str) -> None:
    """Raise on every rank unless all ranks hold the same paths, shapes and dtypes (a
    collective on mismatched arrays would fail or hang).
    """
    layout = repr([(path, leaf.shape, str(leaf.dtype)) for path, leaf in flat])
    _check_same_text(group, layout, f"Expected the {what} to have the same paths, shapes and "
                                    "dtypes on all {size} ranks, found {count} different "
                                    "layouts (fingerprint per rank: {digests}). Build the "
                                    "same model and optimizer on every rank.")


def partition_description(optimizer: Any) -> str:
    """What must be equal on every rank for an optimizer to step alike: its class, its
    groups (labels, rules, sub-optimizer classes) and the paths, shapes and dtypes of
    its state.
    """
    labels = getattr(optimizer, "labels", None)
    rules = [getattr(r, "text", None) or getattr(r, "describe", lambda r=r: repr(r))()
             for r in getattr(optimizer, "filters", ())]
    subs = [type(o).__name__ for o in getattr(optimizer, "optimizers", ())]
    state = optimizer.state
    if isinstance(state, dict) and "states" in state:
        state = {"states": state["states"]}  # metrics and counters are not the partition
    layout = [(path, leaf.shape, str(leaf.dtype)) for path, leaf in _array_leaves(state)]
    return repr((type(optimizer).__name__, list(labels or ()), rules, subs, layout))


def check_same_partition(group: Any, optimizer: Any) -> None:
    """Raise :class:`OutOfSyncError` on every rank unless all ranks split the parameters
    alike: the same groups, rules and state layout. Call it after the first step
    (``train()`` does): a rank with other rules would go on training out of sync.
    """
    if group.size() == 1:
        return
    _check_same_text(group, partition_description(optimizer),
                     "Expected the optimizer to split the parameters alike on all {size} "
                     "ranks (the same groups, rules and state layout), found {count} "
                     "different partitions (fingerprint per rank: {digests}). Build the "
                     "optimizer with the same rules on every rank.")


def _check_same_text(group: Any, text: str, message: str) -> None:
    digest = int.from_bytes(hashlib.sha256(text.encode("utf-8", "backslashreplace")).digest()[:3],
                            "big")
    digests: Any = mx.distributed.all_gather(mx.array([digest], dtype=mx.int32), group=group)  # then a list
    digests = digests.tolist()
    if len(set(digests)) > 1:
        raise OutOfSyncError(message.format(size=group.size(), count=len(set(digests)),
                                            digests=digests))


def _broadcast_leaves(group: Any, leaves: list[mx.array]) -> list[mx.array]:
    """Rank 0's leaves on every rank: one all_sum of raw bytes, where the
    other ranks add zeros (integer addition, so nothing is rounded)."""
    data = _as_bytes(leaves)
    if group.rank() != 0:
        data = mx.zeros_like(data)
    return _from_bytes(mx.distributed.all_sum(data, group=group), leaves)


def _array_leaves(tree: Any) -> list[tuple[str, mx.array]]:
    """The (path, array) pairs of a tree; other leaves are not communicated."""
    return [(k, v) for k, v in tree_flatten(tree) if isinstance(v, mx.array)]  # type: ignore[str-unpack]  # tree_flatten gives a list here (mlx types it list | dict)


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
