"""Per-group optimizer metrics, built lazily in the same graph as the update.

On a recorded step the optimizer hands :func:`group_sums` each group's
gradients, old and new parameters; the result is a handful of lazy arrays
stored in the optimizer's state under ``"metrics"`` (so ``mx.eval(...,
optimizer.state)`` computes them with the update, and a compiled step returns
them like any other state). :class:`MetricsReader` turns them into Python
floats the first time someone reads them.

Example:
    >>> import mlx.core as mx
    >>> sums = group_sums([piece_sums(mx.array([3.0]), mx.array([1.0]), mx.array([0.0]))])
    >>> [round(x, 3) for x in sums.tolist()]
    [1.0, 9.0, 1.0]
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import mlx.core as mx
import numpy as np

__all__ = ["METRIC_NAMES", "piece_sums", "group_sums", "metric_arrays", "MetricsReader", "is_metrics_step",
           "nonfinite_groups"]

#: The per-group keys of ``MultiOptimizer.metrics``.
METRIC_NAMES = ("update_norm", "grad_norm", "param_norm", "update_ratio", "learning_rate")


def is_metrics_step(step: int, every: int | None) -> bool:
    """Whether step ``step`` (1-based, as MLX counts after an update) is recorded.

    Steps 1, 1 + every, 1 + 2 * every, ... are recorded, so the first step
    always is.

    Example:
        >>> [s for s in range(1, 25) if is_metrics_step(s, 10)]
        [1, 11, 21]
    """
    return every is not None and (step - 1) % every == 0


def _flat32(array: Any) -> Any:
    flat = array.reshape(-1)
    return flat if flat.dtype == mx.float32 else flat.astype(mx.float32)


_COLUMNS = 1024
# Up to this many elements the stacked copy costs less than the extra kernels.
_STACKED_SIZE = 1 << 14


def _sum_of_squares(flat: Any) -> Any:
    # MLX's CPU reduction over a long contiguous axis is about five times
    # slower than over the leading axis of a (rows, 1024) view.
    squares = mx.square(flat)
    n = squares.size
    rows = n // _COLUMNS
    if rows < 8:
        return mx.sum(squares)
    main = squares[: rows * _COLUMNS] if rows * _COLUMNS != n else squares
    total = mx.sum(mx.sum(main.reshape(rows, _COLUMNS), axis=0))
    if rows * _COLUMNS != n:
        total = total + mx.sum(squares[rows * _COLUMNS:])
    return total


def _stacked_sums(*vectors: Any) -> Any:
    n = vectors[0].size
    if n < 8 * _COLUMNS:
        return mx.sum(mx.square(mx.stack(vectors)), axis=1)
    # Pad each to whole rows so the (3, rows, 1024) view reduces on its fast axis.
    pad = (-n) % _COLUMNS
    parts = [part for v in vectors for part in ((v, mx.zeros((pad,), v.dtype)) if pad else (v,))]
    squares = mx.square(mx.concatenate(parts)).reshape(len(vectors), -1, _COLUMNS)
    return mx.sum(mx.sum(squares, axis=1), axis=1)


def piece_sums(gradient: Any, old: Any, new: Any) -> Any:
    """Sums of squares ``[update, gradient, parameter]`` of one piece, as a (3,) array.

    A piece is one parameter or the flat concatenation a batched update
    already built (so no extra copy is made). Sums are in float32.

    Example:
        >>> piece_sums(mx.array([3.0]), mx.array([1.0]), mx.array([0.0])).tolist()
        [1.0, 9.0, 1.0]
    """
    old_flat = _flat32(old)
    update = _flat32(new) - old_flat
    grad = _flat32(gradient)
    if update.size <= _STACKED_SIZE:
        return _stacked_sums(update, grad, old_flat)
    return mx.stack([_sum_of_squares(update), _sum_of_squares(grad), _sum_of_squares(old_flat)])


def group_sums(pieces: Sequence[Any]) -> Any:
    """Add the :func:`piece_sums` of one group's pieces (zeros for an empty group).

    Example:
        >>> group_sums([]).tolist()
        [0.0, 0.0, 0.0]
    """
    if not pieces:
        return mx.zeros((3,), mx.float32)
    return pieces[0] if len(pieces) == 1 else mx.sum(mx.stack(pieces), axis=0)


def metric_arrays(sums: Sequence[Any], learning_rates: Sequence[Any], step: Any) -> dict[str, Any]:
    """The lazy arrays a recorded step stores: ``sums`` (groups x 3), ``learning_rates``, ``step``.

    Example:
        >>> m = metric_arrays([mx.zeros((3,))], [mx.array(0.1)], mx.array(1))
        >>> m["sums"].shape, m["learning_rates"].shape
        ((1, 3), (1,))
    """
    rates = [
        mx.array(math.nan, mx.float32) if r is None
        else (r if r.dtype == mx.float32 else r.astype(mx.float32)).reshape(())
        for r in learning_rates
    ]
    return {"sums": mx.stack(sums), "learning_rates": mx.stack(rates), "step": step}


class MetricsReader:
    """Materialises stored metric arrays into floats, once per recorded step.

    Example:
        >>> reader = MetricsReader()
        >>> arrays = metric_arrays([mx.array([4.0, 1.0, 16.0])], [mx.array(0.5)], mx.array(3))
        >>> reader.read(arrays, ("sgd",))["sgd"]["update_ratio"]
        0.5
    """

    def __init__(self) -> None:
        self._source: Any = None
        self._value: dict | None = None
        self._step: int | None = None

    def _refresh(self, arrays: dict, labels: Sequence[str]) -> None:
        sums_array = arrays.get("sums")
        if sums_array is None:
            self._source, self._value, self._step = None, None, None
            return
        if sums_array is self._source and self._value is not None:
            return
        mx.eval(sums_array, arrays["learning_rates"], arrays["step"])
        sums = np.array(sums_array, dtype=np.float64)
        rates = np.array(arrays["learning_rates"], dtype=np.float64)
        value = {}
        for label, row, rate in zip(labels, sums, rates):
            value[label] = _norms(row, float(rate))
        value["total"] = _norms(sums.sum(axis=0), math.nan)
        self._source, self._value, self._step = sums_array, value, int(arrays["step"].item())

    def read(self, arrays: dict, labels: Sequence[str]) -> dict | None:
        """``{label: {metric: float}, "total": {...}}`` or None before any record."""
        self._refresh(arrays, labels)
        return self._value

    def step(self, arrays: dict, labels: Sequence[str]) -> int | None:
        """The optimizer step the stored metrics belong to (None before any record)."""
        self._refresh(arrays, labels)
        return self._step


def _norms(row: Any, learning_rate: float) -> dict[str, float]:
    update, grad, param = (math.sqrt(float(x)) if x >= 0 else math.nan for x in row)
    ratio = update / param if param > 0 else (0.0 if update == 0 else math.inf)
    if math.isnan(update) or math.isnan(param):
        ratio = math.nan
    return {
        "update_norm": update,
        "grad_norm": grad,
        "param_norm": param,
        "update_ratio": ratio,
        "learning_rate": learning_rate,
    }


def nonfinite_groups(metrics: dict | None) -> dict[str, tuple[str, ...]]:
    """Groups whose gradient or update had an inf or a NaN, and which of the two.

    A norm whose sum of squares overflows float32 is flagged too (it is inf).

    Example:
        >>> m = {"a": {"grad_norm": float("nan"), "update_norm": 1.0}, "total": {}}
        >>> nonfinite_groups(m)
        {'a': ('gradient',)}
    """
    found: dict[str, tuple[str, ...]] = {}
    for label, values in (metrics or {}).items():
        if label == "total":
            continue
        bad = tuple(
            kind for kind, key in (("gradient", "grad_norm"), ("update", "update_norm"))
            if not math.isfinite(values.get(key, 0.0))
        )
        if bad:
            found[label] = bad
    return found
