"""Every parameter's metrics of one recorded step (``per_parameter=True``), as numbers.

The optimizer stores one lazy ``(parameters, 3)`` array of sums of squares
(update, gradient, parameter before the step) per recorded step; a
:class:`ParameterMetricsReader` turns it once into a :class:`ParameterMetrics`:
paths, their group labels and a ``(parameters, 4)`` float64 table of
``update_norm``, ``grad_norm``, ``param_norm`` and ``update_ratio``. One
array for all parameters keeps a recorded step cheap to hand to a History,
however many parameters the model has.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from multiopt_lab._src.optimizer.metrics import PARAMETER_METRIC_NAMES

__all__ = ["ParameterMetrics", "ParameterMetricsReader", "norms_of_sums"]


def norms_of_sums(sums: np.ndarray) -> np.ndarray:
    """``(n, 3)`` sums of squares -> ``(n, 4)`` update, gradient and parameter norms and their ratio.

    The ratio is the update norm over the parameter norm before the step, as
    for the groups: 0 when both are 0, inf when only the parameter's is, NaN
    when either is NaN. A negative sum (not a sum of squares) gives NaN.
    """
    sums = np.asarray(sums, dtype=np.float64).reshape(-1, 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        norms = np.sqrt(np.where(sums >= 0, sums, np.nan))
        update, param = norms[:, 0], norms[:, 2]
        ratio = update / param
    ratio = np.where((param == 0) & (update == 0), 0.0, ratio)
    return np.column_stack([norms, ratio])


class ParameterMetrics(Mapping):
    """Each parameter's metrics at one recorded step: ``{path: {metric: value}}`` as a mapping.

    Attributes:
        step (int): The optimizer step they belong to.
        paths (tuple[str, ...]): The parameters, in flatten (tree) order.
        groups (tuple[str, ...]): The group label of each path.
        table (numpy.ndarray): ``(len(paths), 4)`` float64, columns as :attr:`metrics`
            (``values()``, ``items()`` and ``keys()`` are the mapping's, as for any dict).
        metrics (tuple[str, ...]): ``update_norm``, ``grad_norm``, ``param_norm``,
            ``update_ratio`` (update norm / parameter norm before the step).
    """

    metrics = PARAMETER_METRIC_NAMES
    table: np.ndarray

    def __init__(self, step: int, paths: Sequence[str], groups: Sequence[str],
                 table: Any) -> None:
        table = np.asarray(table, dtype=np.float64)
        paths, groups = tuple(paths), tuple(groups)
        if table.shape != (len(paths), len(self.metrics)) or len(groups) != len(paths):
            raise ValueError(f"expected one group and one row of {len(self.metrics)} values per "
                             f"path ({len(paths)} paths), found {len(groups)} groups and values "
                             f"of shape {table.shape}")
        self.step, self.paths, self.groups, self.table = int(step), paths, groups, table
        self._rows = {path: row for row, path in enumerate(paths)}

    def __getitem__(self, path: str) -> dict[str, Any]:
        row = self._rows[path]
        return {"group": self.groups[row],
                **{name: float(v) for name, v in zip(self.metrics, self.table[row])}}

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (f"ParameterMetrics(step={self.step}, {len(self.paths)} parameters in "
                f"{len(set(self.groups))} groups)")

    def to_frame(self):
        """One row per (path, metric): columns path, group, metric, value.
        """
        import pandas as pd

        count = len(self.metrics)
        return pd.DataFrame({
            "path": np.repeat(np.array(self.paths, dtype=object), count),
            "group": np.repeat(np.array(self.groups, dtype=object), count),
            "metric": np.tile(np.array(self.metrics, dtype=object), len(self.paths)),
            "value": self.table.reshape(-1),
        })


class ParameterMetricsReader:
    """Turns the stored per-parameter sums into a :class:`ParameterMetrics`, once per step.
    """

    def __init__(self) -> None:
        self._source: Any = None
        self._value: ParameterMetrics | None = None

    def read(self, sums: Any, step: int, paths: Sequence[str],
             groups: Sequence[str]) -> ParameterMetrics | None:
        """The metrics of ``sums`` (``(len(paths), 3)``), or None when they do not fit ``paths``."""
        if sums is self._source and self._value is not None:
            return self._value
        if sums is None or tuple(sums.shape) != (len(paths), 3):
            return None
        mx.eval(sums)
        value = ParameterMetrics(step, paths, groups, norms_of_sums(np.array(sums)))
        self._source, self._value = sums, value
        return value
