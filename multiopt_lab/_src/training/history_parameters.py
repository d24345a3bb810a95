"""The per-parameter rows of a History, stored compactly.

A recorded step of a 32-layer model holds about 350 parameters x 4 metrics:
kept as Python rows that would be some 200 bytes a value. Here a recorded
step is one block: the run, the step, a shared *layout* (the paths and their
groups, as integer codes) and a ``(parameters, metrics)`` float64 array, so
a value costs 8 bytes. :meth:`ParameterRecords.frame` lays the blocks out as
the long frame (run, step, path, group, metric, value) with categorical
string columns (integer codes, one copy of each name), built once and
cached until the next record. Rows read from a file are kept as one block of
explicit columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from multiopt_lab._src.io.history_data import PARAMETER_COLUMNS

__all__ = ["ParameterRecords", "Codes"]


class Codes:
    """Strings numbered in order of first appearance (the categories of one column).
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}

    def code(self, name: str) -> int:
        """The code of ``name`` (a new one for a name not seen yet)."""
        found = self._index.get(name)
        if found is None:
            found = self._index[name] = len(self.names)
            self.names.append(name)
        return found

    def codes(self, names: Sequence[str]) -> np.ndarray:
        """The codes of ``names`` as an int32 array."""
        return np.fromiter((self.code(n) for n in names), dtype=np.int32, count=len(names))

    def categorical(self, codes: np.ndarray) -> pd.Categorical:
        """A categorical of these codes, its categories in order of first appearance."""
        dtype = np.int8 if len(self.names) < 127 else np.int16 if len(self.names) < 32767 else np.int32
        return pd.Categorical.from_codes(codes.astype(dtype, copy=False),
                                         categories=pd.Index(self.names, dtype=object))

    def clear(self) -> None:
        """Forget every name."""
        self.names.clear()
        self._index.clear()


@dataclass(frozen=True)
class _Layout:
    paths: np.ndarray    # int32 codes, one per row of a block
    groups: np.ndarray   # int32 codes, one per row
    metrics: np.ndarray  # int32 codes, one per column


@dataclass(frozen=True)
class _Block:
    run: int
    step: int
    layout: _Layout
    values: np.ndarray   # (rows, metrics) float64


@dataclass(frozen=True)
class _Rows:
    # Explicit long rows (from a file): one array per column, codes for strings.
    run: np.ndarray
    step: np.ndarray
    path: np.ndarray
    group: np.ndarray
    metric: np.ndarray
    value: np.ndarray


class ParameterRecords:
    """Per-parameter values of every run: blocks of one recorded step each, and rows from files.

    Not locked by itself: the History's records hold their lock around it.
    """

    def __init__(self) -> None:
        self.runs, self.paths, self.groups, self.metrics = Codes(), Codes(), Codes(), Codes()
        self._chunks: list[_Block | _Rows] = []
        self._layouts: dict[tuple, _Layout] = {}
        self._length = 0
        self._frame: pd.DataFrame | None = None
        # The latest values of each run, read without building the frame (a
        # monitor asks at every redraw): its last recorded block, or, for rows
        # read from a file, (path, metric) -> (step, value, group) codes.
        self._latest: dict[int, _Block] = {}
        self._latest_rows: dict[int, dict[tuple[int, int], tuple[int, float, int]]] = {}

    def __len__(self) -> int:
        return self._length

    def append_block(self, run: str, step: int, paths: Sequence[str], groups: Sequence[str],
                     metrics: Sequence[str], values: Any) -> None:
        """Add one recorded step: ``values[i, j]`` is metric ``metrics[j]`` of ``paths[i]``."""
        values = np.array(values, dtype=np.float64)  # a copy: the caller's array may change
        if values.shape != (len(paths), len(metrics)):
            raise ValueError(f"expected values of shape ({len(paths)}, {len(metrics)}) "
                             f"(paths x metrics), found {values.shape}")
        key = (tuple(paths), tuple(groups), tuple(metrics))
        layout = self._layouts.get(key)
        if layout is None:
            layout = _Layout(self.paths.codes(key[0]), self.groups.codes(key[1]),
                             self.metrics.codes(key[2]))
            self._layouts[key] = layout
        block = _Block(self.runs.code(run), int(step), layout, values)
        self._chunks.append(block)
        self._latest[block.run] = block
        self._latest_rows.pop(block.run, None)
        self._length += values.size
        self._frame = None

    def append_rows(self, frame: pd.DataFrame) -> None:
        """Add long rows (columns of :data:`PARAMETER_COLUMNS`, already checked)."""
        if not len(frame):
            return
        columns = {}
        for name, codes in (("run", self.runs), ("path", self.paths), ("group", self.groups),
                            ("metric", self.metrics)):
            column = frame[name]
            if not isinstance(column.dtype, pd.CategoricalDtype):
                column = column.astype("category")
            # Names take codes in order of first appearance (tree order for
            # paths), not in the categories' (sorted) order.
            local = column.cat.codes.to_numpy()
            categories = column.cat.categories
            mapping = np.zeros(len(categories), np.int32)
            for c in pd.unique(local):
                mapping[c] = codes.code(str(categories[c]))
            columns[name] = mapping[local]
        rows = _Rows(columns["run"], frame["step"].to_numpy(np.int64), columns["path"],
                     columns["group"], columns["metric"], frame["value"].to_numpy(np.float64))
        self._chunks.append(rows)
        for run in np.unique(rows.run):
            self._remember_rows(int(run), rows)
        self._length += len(rows.value)
        self._frame = None

    def _remember_rows(self, run: int, rows: _Rows) -> None:
        # The last row of each (path, metric) of ``run`` in this chunk updates its latest values.
        mine = np.flatnonzero(rows.run == run)
        keys = rows.path[mine].astype(np.int64) * (1 << 20) + rows.metric[mine]
        _, last_from_end = np.unique(keys[::-1], return_index=True)
        last = mine[len(mine) - 1 - last_from_end]
        table = {} if run in self._latest else self._latest_rows.get(run, {})
        block = self._latest.pop(run, None)
        if block is not None:  # a run continued from a file: keep what its blocks said
            for r, path in enumerate(block.layout.paths):
                for c, metric in enumerate(block.layout.metrics):
                    table[(int(path), int(metric))] = (block.step, float(block.values[r, c]),
                                                       int(block.layout.groups[r]))
        for i in last:
            table[(int(rows.path[i]), int(rows.metric[i]))] = (
                int(rows.step[i]), float(rows.value[i]), int(rows.group[i]))
        self._latest_rows[run] = table

    def clear(self) -> None:
        """Forget everything."""
        for codes in (self.runs, self.paths, self.groups, self.metrics):
            codes.clear()
        self._chunks.clear()
        self._layouts.clear()
        self._latest.clear()
        self._latest_rows.clear()
        self._length = 0
        self._frame = None

    # -- reads -------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        """The long frame (run, step, path, group, metric, value); cached until a change.

        Rows come in the order they were recorded: by step, then by path in
        tree order, then by metric. String columns are categoricals.
        """
        if self._frame is None:
            self._frame = self._build_frame()
        return self._frame

    def _build_frame(self) -> pd.DataFrame:
        parts: dict[str, list[np.ndarray]] = {name: [] for name in PARAMETER_COLUMNS}
        for chunk in self._chunks:
            if isinstance(chunk, _Rows):
                for name in PARAMETER_COLUMNS:
                    parts[name].append(getattr(chunk, name))
                continue
            rows, count = chunk.values.shape
            size = rows * count
            parts["run"].append(np.full(size, chunk.run, np.int32))
            parts["step"].append(np.full(size, chunk.step, np.int64))
            parts["path"].append(np.repeat(chunk.layout.paths, count))
            parts["group"].append(np.repeat(chunk.layout.groups, count))
            parts["metric"].append(np.tile(chunk.layout.metrics, rows))
            parts["value"].append(chunk.values.reshape(-1))
        joined = {name: (np.concatenate(arrays) if arrays else
                         np.zeros(0, np.float64 if name == "value" else
                                  np.int64 if name == "step" else np.int32))
                  for name, arrays in parts.items()}
        return pd.DataFrame({
            "run": self.runs.categorical(joined["run"]),
            "step": joined["step"],
            "path": self.paths.categorical(joined["path"]),
            "group": self.groups.categorical(joined["group"]),
            "metric": self.metrics.categorical(joined["metric"]),
            "value": joined["value"],
        })

    def latest(self, run: str, metric: str) -> pd.Series:
        """Each parameter's last recorded value of ``metric`` in ``run`` (index: path, tree order).

        Empty when ``run`` has no such value; ``attrs["step"]`` holds the last step.
        """
        code = self.runs._index.get(run)
        metric_code = self.metrics._index.get(metric)
        if code is None or metric_code is None:
            return pd.Series([], dtype=np.float64, name=metric)
        block = self._latest.get(code)
        if block is not None:
            columns = block.layout.metrics.tolist()
            if metric_code in columns:
                names = self.paths.names
                found = pd.Series(block.values[:, columns.index(metric_code)],
                                  index=pd.Index([names[c] for c in block.layout.paths], name="path"),
                                  name=metric)
                found.attrs["step"] = block.step
                return found
        table = self._latest_rows.get(code, {})
        names = self.paths.names
        found = [(path, step, value) for (path, code_of_metric), (step, value, _) in table.items()
                 if code_of_metric == metric_code]
        found.sort(key=lambda item: item[0])  # codes follow first appearance: tree order
        series = pd.Series([value for _, _, value in found],
                           index=pd.Index([names[p] for p, _, _ in found], name="path"),
                           name=metric, dtype=np.float64)
        series.attrs["step"] = max((step for _, step, _ in found), default=None)
        return series

    def groups_of(self, run: str) -> dict[str, str]:
        """``{path: group}`` of the parameters recorded in ``run`` (the latest group of each)."""
        code = self.runs._index.get(run)
        if code is None:
            return {}
        block = self._latest.get(code)
        paths, groups = self.paths.names, self.groups.names
        if block is not None:
            return {paths[p]: groups[g] for p, g in zip(block.layout.paths, block.layout.groups)}
        table = self._latest_rows.get(code, {})
        found = sorted({path: group for (path, _), (_, _, group) in table.items()}.items())
        return {paths[p]: groups[g] for p, g in found}
