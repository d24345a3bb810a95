"""Turning the stored metric arrays into Python floats, once per recorded step.
"""

from __future__ import annotations

import math
from typing import Any
from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from multiopt_lab._src.partition.labels import TOTAL_LABEL

__all__ = ["MetricsReader", "nonfinite_groups"]


class MetricsReader:
    """Materialises stored metric arrays into floats, once per recorded step.
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
        value[TOTAL_LABEL] = _norms(sums.sum(axis=0), math.nan)
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
    """
    found: dict[str, tuple[str, ...]] = {}
    for label, values in (metrics or {}).items():
        if label == TOTAL_LABEL:
            continue
        bad = tuple(
            kind for kind, key in (("gradient", "grad_norm"), ("update", "update_norm"))
            if not math.isfinite(values.get(key, 0.0))
        )
        if bad:
            found[label] = bad
    return found
