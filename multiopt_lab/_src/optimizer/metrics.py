"""Per-group and per-parameter optimizer metrics, built lazily in the same graph as the update.

On a recorded step the optimizer hands :func:`pieces_sums` each group's
``(gradient, old, new)`` pieces; the result is a handful of lazy arrays
stored in the optimizer's state under ``"metrics"`` (so ``mx.eval(...,
optimizer.state)`` computes them with the update, and a compiled step returns
them like any other state). :class:`MetricsReader` (in ``metrics_reader``)
turns them into Python floats the first time someone reads them.

With ``per_parameter=True`` every parameter's three sums of squares are
taken (:func:`leaf_sums`, stored as ``"parameter_sums"``, one row per
parameter in flatten order) and each group's sums are the sums of its
parameters' rows: the group numbers are the roll-up of the parameter ones.
The parameter norm is the norm *before* the step, for the groups as for the
parameters, and the ratio divides by it.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any
from collections.abc import Sequence

import mlx.core as mx

from multiopt_lab._src.optimizer.metrics_reader import MetricsReader, nonfinite_groups

__all__ = ["METRIC_NAMES", "PARAMETER_METRIC_NAMES", "piece_sums", "group_sums", "pieces_sums",
           "leaf_sums", "metric_arrays", "metrics_of_update", "MetricsReader", "is_metrics_step",
           "nonfinite_groups"]

#: The per-group keys of ``MultiOptimizer.metrics``.
METRIC_NAMES = ("update_norm", "grad_norm", "param_norm", "update_ratio", "learning_rate")
#: The per-parameter metrics (``per_parameter=True``), named as the group ones.
PARAMETER_METRIC_NAMES = METRIC_NAMES[:4]


def is_metrics_step(step: int, every: int | None) -> bool:
    """Whether step ``step`` (1-based, as MLX counts after an update) is recorded.

    Steps 1, 1 + every, 1 + 2 * every, ... are recorded, so the first step
    always is.
    """
    return every is not None and (step - 1) % every == 0


def _flat32(array: Any) -> Any:
    flat = array.reshape(-1)
    return flat if flat.dtype == mx.float32 else flat.astype(mx.float32)


#: Rows of this many elements: MLX's CPU sum over the leading axis of a
#: (rows, 1024) view is about four times faster than over one long axis.
_COLUMNS = 1024
# Up to this many elements the stacked copy costs less than the extra kernels.
_STACKED_SIZE = 1 << 14
#: A large piece is cut into this many equal slices that one fused kernel adds up.
FOLDS = 4


@partial(mx.compile, shapeless=True)
def _folded_squares(*slices: Any) -> tuple[Any, Any, Any]:
    # ``slices``: k gradient slices, then k old, then k new, all of one
    # length (FOLDS slices of one large piece, or up to ACROSS small pieces
    # of one size). One fused kernel casts, subtracts, squares and adds them
    # slice over slice, so it reads each element once and writes only 1/k of
    # it: the squares are never stored full size.
    k = len(slices) // 3
    gradients, olds, news = slices[:k], slices[k:2 * k], slices[2 * k:]
    total_update = total_gradient = total_old = None
    for gradient, old, new in zip(gradients, olds, news):
        old = old.astype(mx.float32)
        update = new.astype(mx.float32) - old
        gradient = gradient.astype(mx.float32)
        squares = (update * update, gradient * gradient, old * old)
        if total_update is None:
            total_update, total_gradient, total_old = squares
        else:
            total_update = total_update + squares[0]
            total_gradient = total_gradient + squares[1]
            total_old = total_old + squares[2]
    return total_update, total_gradient, total_old


def _row_sum(vector: Any) -> Any:
    # ``vector`` holds whole rows of _COLUMNS elements.
    return mx.sum(mx.sum(vector.reshape(-1, _COLUMNS), axis=0))


def _folded_sums(gradient: Any, old: Any, new: Any) -> Any:
    flats = [array.reshape(-1) for array in (gradient, old, new)]
    n = flats[0].size
    length = n // (FOLDS * _COLUMNS) * _COLUMNS
    slices = [flat[k * length:(k + 1) * length] for flat in flats for k in range(FOLDS)]
    sums = mx.stack([_row_sum(total) for total in _folded_squares(*slices)])
    if FOLDS * length == n:
        return sums
    rest_gradient, rest_old, rest_new = (_flat32(flat[FOLDS * length:]) for flat in flats)
    return sums + _stacked_sums(rest_new - rest_old, rest_gradient, rest_old)


def _stacked_sums(*vectors: Any) -> Any:
    n = vectors[0].size
    if n < 8 * _COLUMNS:
        return mx.sum(mx.square(mx.stack(vectors)), axis=1)  # type: ignore[arg-type]  # mx.stack takes any sequence of arrays
    # Pad each to whole rows so the (3, rows, 1024) view reduces on its fast axis.
    pad = (-n) % _COLUMNS
    parts = [part for v in vectors for part in ((v, mx.zeros((pad,), v.dtype)) if pad else (v,))]
    squares = mx.square(mx.concatenate(parts)).reshape(len(vectors), -1, _COLUMNS)
    return mx.sum(mx.sum(squares, axis=1), axis=1)


def piece_sums(gradient: Any, old: Any, new: Any) -> Any:
    """Sums of squares ``[update, gradient, parameter]`` of one piece, as a (3,) array.

    A piece is one parameter or the flat concatenation a batched update
    already built (so no extra copy is made). Sums are in float32.
    """
    if gradient.size <= _STACKED_SIZE:
        old_flat = _flat32(old)
        return _stacked_sums(_flat32(new) - old_flat, _flat32(gradient), old_flat)
    return _folded_sums(gradient, old, new)


def group_sums(pieces: Sequence[Any]) -> Any:
    """Add the :func:`piece_sums` of one group's pieces (zeros for an empty group).
    """
    if not pieces:
        return mx.zeros((3,), mx.float32)
    return pieces[0] if len(pieces) == 1 else mx.sum(mx.stack(pieces), axis=0)  # type: ignore[arg-type]  # mx.stack takes any sequence of arrays


#: Pieces up to this many elements are concatenated before their sums are taken.
CONCATENATED_SIZE = 8192


def pieces_sums(pieces: Sequence[tuple[Any, Any, Any]]) -> Any:
    """One group's ``[update, gradient, parameter]`` sums of squares from its pieces.

    Each piece is ``(gradient, old, new)``. Small pieces of one size are
    folded together, up to :data:`ACROSS` per fused kernel; the other small
    ones are concatenated first, so the count of kernels grows far slower
    than the count of pieces. Large ones are reduced one by one (a copy
    would cost more than the kernels it saves).
    """
    small = [piece for piece in pieces if piece[0].size <= CONCATENATED_SIZE]
    sums = [piece_sums(*piece) for piece in pieces if piece[0].size > CONCATENATED_SIZE]
    small, folded = _fold_equal_sizes(small)
    if folded is not None:
        sums.append(folded)
    if len(small) > 1:
        sums.append(piece_sums(*(mx.concatenate([p[k].reshape(-1) for p in small])
                                 for k in range(3))))
    elif small:
        sums.append(piece_sums(*small[0]))
    return group_sums(sums)


#: Small pieces of one size are folded this many at a time, straight from the leaves.
#: Eight keeps a fold within what MLX fuses into one kernel (24 arrays, a
#: depth of 11): 24 inputs, and 7 additions after the cast, difference and square.
ACROSS = 8


def _fold_equal_sizes(pieces: Sequence[tuple[Any, Any, Any]]) -> tuple[list, Any]:
    # Transformer stacks repeat a few sizes many times over: pieces of one size
    # go through the fused folding kernel ACROSS at a time without being
    # copied into a concatenation first (the copy cost more than the sums,
    # under compile=True where no batched update has concatenated them already).
    # Returns the pieces left over and the sums of the folded ones (or None).
    by_size: dict[int, list] = {}
    for piece in pieces:
        by_size.setdefault(piece[0].size, []).append(piece)
    rest: list = []
    totals: tuple[list, list, list] = ([], [], [])
    for same in by_size.values():
        for start in range(0, len(same), ACROSS):
            chunk = same[start:start + ACROSS]
            if len(chunk) < 2:
                rest.extend(chunk)
                continue
            flats = [p[k].reshape(-1) for k in range(3) for p in chunk]
            for total, part in zip(totals, _folded_squares(*flats)):
                total.append(part)
    if not totals[0]:
        return rest, None
    joined = mx.concatenate(totals[0] + totals[1] + totals[2]).reshape(3, -1)
    return rest, mx.sum(joined, axis=1)


#: Pieces up to this many elements are stacked with the other pieces of their
#: size (and dtypes) and reduced row by row: a few kernels per size, not per
#: piece. Larger ones are reduced one by one (the stacked copy would cost more).
STACKED_LEAF_SIZE = 1 << 14


def _column_width(n: int) -> int:
    # The widest power of two up to 1024 that divides n: reducing a
    # (rows, width) view over its rows first is fast and adds in short runs.
    width = 1
    while width < 1024 and n % (width * 2) == 0:
        width *= 2
    return width


def _rows_of_squares(array: Any, width: int) -> Any:
    k, n = array.shape
    squares = mx.square(array)
    if width == 1:
        return mx.sum(squares, axis=1)
    return mx.sum(mx.sum(squares.reshape(k, n // width, width), axis=1), axis=1)


def _stacked_leaf_sums(gradients: Any, olds: Any, news: Any) -> Any:
    # Each (k, n): k pieces of n elements. Returns (k, 3).
    width = _column_width(gradients.shape[1])
    old = olds if olds.dtype == mx.float32 else olds.astype(mx.float32)
    update = (news if news.dtype == mx.float32 else news.astype(mx.float32)) - old
    gradient = gradients if gradients.dtype == mx.float32 else gradients.astype(mx.float32)
    return mx.stack([_rows_of_squares(a, width) for a in (update, gradient, old)], axis=1)


def _leaf_sums_unordered(pieces: Sequence[tuple[Any, Any, Any]]) -> tuple[Any, list[int]]:
    """``(rows, order)``: one row of sums per piece, row ``r`` being piece ``order[r]``."""
    classes: dict[tuple, list[int]] = {}
    for i, (gradient, old, new) in enumerate(pieces):
        size = gradient.size
        key = ((size, gradient.dtype, old.dtype, new.dtype) if size <= STACKED_LEAF_SIZE
               else (-1 - i,))
        classes.setdefault(key, []).append(i)
    blocks, order = [], []
    for members in classes.values():
        if len(members) == 1:
            blocks.append(piece_sums(*pieces[members[0]]).reshape(1, 3))
        else:
            size = pieces[members[0]][0].size
            stacked = [mx.concatenate([pieces[i][k].reshape(-1) for i in members]).reshape(-1, size)
                       for k in range(3)]
            blocks.append(_stacked_leaf_sums(*stacked))
        order += members
    return (mx.concatenate(blocks) if len(blocks) > 1 else blocks[0]), order


def _inverse(order: Sequence[int]) -> list[int]:
    inverse = [0] * len(order)
    for position, i in enumerate(order):
        inverse[i] = position
    return inverse


def leaf_sums(pieces: Sequence[tuple[Any, Any, Any]]) -> Any:
    """Sums of squares ``[update, gradient, parameter]`` of every piece: a (pieces, 3) array.

    Each piece is ``(gradient, old, new)`` of one parameter; the rows follow
    the pieces' order. Small pieces of one size are stacked and reduced
    together; sums are in float32, added in short runs.
    """
    if not pieces:
        return mx.zeros((0, 3), mx.float32)
    rows, order = _leaf_sums_unordered(pieces)
    if order == sorted(order):
        return rows
    return mx.take(rows, mx.array(_inverse(order), mx.int32), axis=0)


def _common_width(sizes: Sequence[int]) -> int:
    # The widest power of two up to 1024 that divides every size (so every offset too).
    width = 1024
    while width > 1 and any(size % width for size in sizes):
        width //= 2
    return width


def _flat_leaf_sums(gradient: Any, old: Any, new: Any, sizes: Sequence[int]) -> tuple[Any, list[int]]:
    """``(rows, order)`` of the leaves of a bucket's flat concatenation, without copying it.

    The squares are summed over rows of a width that divides every leaf
    (folded in one fused kernel where the rows are wide), then each leaf's
    rows are gathered (one small gather per distinct row count).
    """
    width = _common_width(sizes)
    if width >= 4 * FOLDS:
        # One fused kernel adds FOLDS column slices of every row: each element
        # is read once and the squares are written at a quarter of full size.
        part = width // FOLDS
        slices = [array.reshape(-1, width)[:, k * part:(k + 1) * part]
                  for array in (gradient, old, new) for k in range(FOLDS)]
        rows = mx.stack([mx.sum(total, axis=1) for total in _folded_squares(*slices)])
    else:
        old32 = _flat32(old)
        squares = (mx.square(_flat32(new) - old32), mx.square(_flat32(gradient)), mx.square(old32))
        rows = mx.stack([mx.sum(a.reshape(-1, width), axis=1) if width > 1 else a
                         for a in squares])
    by_count: dict[int, list[tuple[int, int]]] = {}
    start = 0
    for k, size in enumerate(sizes):
        count = size // width
        by_count.setdefault(count, []).append((k, start))
        start += count
    blocks, order = [], []
    for count, members in by_count.items():
        index = mx.array([[first + j for j in range(count)] for _, first in members], mx.int32)
        blocks.append(mx.sum(mx.take(rows, index, axis=1), axis=2).T)
        order += [k for k, _ in members]
    return (mx.concatenate(blocks) if len(blocks) > 1 else blocks[0]), order


def _per_parameter_sums(pieces: Sequence[Sequence[tuple]]) -> tuple[list, Any]:
    # pieces: per group, ``(leaf index, (gradient, old, new))`` for one leaf or
    # ``(leaf indices, sizes, (gradient, old, new))`` for a bucket's
    # concatenation; every leaf once. Returns each group's sums (the sum of
    # its leaves' rows) and the (leaves, 3) rows in leaf order.
    singles = [(piece[0], piece[1]) for group in pieces for piece in group if len(piece) == 2]
    buckets = [piece for group in pieces for piece in group if len(piece) == 3]
    blocks, leaf_of_row = [], []
    if singles:
        rows, order = _leaf_sums_unordered([triple for _, triple in singles])
        blocks.append(rows)
        leaf_of_row += [singles[r][0] for r in order]
    for indices, sizes, flat in buckets:
        gradient, old, new = flat
        rows, order = _flat_leaf_sums(gradient, old, new, sizes)
        blocks.append(rows)
        leaf_of_row += [indices[k] for k in order]
    if not blocks:
        return [mx.zeros((3,), mx.float32) for _ in pieces], mx.zeros((0, 3), mx.float32)
    rows = mx.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    position = {leaf: row for row, leaf in enumerate(leaf_of_row)}
    group_rows = []
    for group in pieces:
        members = [position[leaf] for piece in group
                   for leaf in ((piece[0],) if len(piece) == 2 else piece[0])]
        if not members:
            group_rows.append(mx.zeros((3,), mx.float32))
        elif members == list(range(members[0], members[0] + len(members))):
            group_rows.append(mx.sum(rows[members[0]:members[0] + len(members)], axis=0))
        else:
            group_rows.append(mx.sum(mx.take(rows, mx.array(members, mx.int32), axis=0), axis=0))
    in_leaf_order = [position[leaf] for leaf in range(len(leaf_of_row))]
    if in_leaf_order != list(range(len(leaf_of_row))):
        rows = mx.take(rows, mx.array(in_leaf_order, mx.int32), axis=0)
    return group_rows, rows


def metric_arrays(sums: Sequence[Any], learning_rates: Sequence[Any], step: Any) -> dict[str, Any]:
    """The lazy arrays a recorded step stores: ``sums`` (groups x 3), ``learning_rates``, ``step``.
    """
    rates = [
        mx.array(math.nan, mx.float32) if r is None
        else (r if r.dtype == mx.float32 else r.astype(mx.float32)).reshape(())
        for r in learning_rates
    ]
    return {"sums": mx.stack(sums), "learning_rates": mx.stack(rates), "step": step}  # type: ignore[arg-type]  # mx.stack takes any sequence of arrays


def metrics_of_update(pieces: Sequence[Sequence[tuple]], optimizers: Sequence[Any],
                      per_parameter: bool = False) -> dict[str, Any]:
    """The metric arrays of one update: per group its pieces' sums, learning rate, and the step.

    ``pieces`` is what ``update_groups`` returns when recording: per group,
    the ``(gradient, old, new)`` arrays of its update, or with
    ``per_parameter`` pieces that name their leaves (``(leaf index, triple)``,
    or ``(leaf indices, sizes, triple)`` for a bucket's concatenation); then
    ``"parameter_sums"`` holds one row per leaf (in leaf order) and each
    group's sums are the sums of its leaves' rows. Nothing is
    computed here (the arrays are lazy, or a compiled update's outputs).
    """
    rates = [o.state.get("learning_rate") for o in optimizers]
    if not per_parameter:
        sums = [pieces_sums(group) for group in pieces]
        return metric_arrays(sums, rates, optimizers[0].state["step"])
    sums, rows = _per_parameter_sums(pieces)
    return {**metric_arrays(sums, rates, optimizers[0].state["step"]), "parameter_sums": rows}
