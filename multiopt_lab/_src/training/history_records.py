"""What a History holds: the tidy rows, the runs and their metadata, and the reads of them.

:class:`HistoryRecords` is the part of :class:`~multiopt_lab.History`
that stores; ``History`` adds recording and subscribers around it, and hands
plain data to its files (:mod:`multiopt_lab._src.io`), whose events come back
through :meth:`HistoryRecords.apply_events`.
Every change and every read that spans several fields holds :attr:`lock`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pandas as pd

from multiopt_lab._src.io.history_data import COLUMNS, Event, HistoryData
from multiopt_lab._src.partition.labels import SCALAR_LABEL, TOTAL_LABEL
from multiopt_lab._src.training.history_parameters import ParameterRecords

__all__ = ["HistoryRecords", "SCALAR_GROUP", "TOTAL_GROUP"]

#: Group of the loss and of other scalars that belong to no parameter group (a reserved label).
SCALAR_GROUP = SCALAR_LABEL
#: Group of the optimizer's totals over all parameters (a reserved label).
TOTAL_GROUP = TOTAL_LABEL


class HistoryRecords:
    """Rows ``(run, step, group, metric, value)`` in columns, the runs, the last values.

    Attributes:
        lock (threading.RLock): Held by every change (and by reads that span fields).
        columns (dict[str, list]): One list per column of :data:`COLUMNS`.
        runs (dict[str, dict]): Run name -> metadata, oldest first.
        ended (set[str]): Runs marked finished.
        current (str | None): The run records go to by default.
        parameters (ParameterRecords): The per-parameter rows.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.columns: dict[str, list] = {name: [] for name in COLUMNS}
        self.runs: dict[str, dict[str, Any]] = {}
        self.ended: set[str] = set()
        self.current: str | None = None
        self._last: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._frame: pd.DataFrame | None = None
        self.parameters = ParameterRecords()

    def __len__(self) -> int:
        return len(self.columns["step"])

    # -- changes -----------------------------------------------------------
    def append(self, rows: Sequence[tuple]) -> None:
        """Add rows ``(run, step, group, metric, value)``."""
        with self.lock:
            columns = self.columns
            for run, step, group, metric, value in rows:
                columns["run"].append(run)
                columns["step"].append(step)
                columns["group"].append(group)
                columns["metric"].append(metric)
                columns["value"].append(value)
                self._last[(run, group, metric)] = (step, value)
            if rows:
                self._frame = None

    def reset(self) -> None:
        """Forget everything (a followed file was replaced)."""
        with self.lock:
            for values in self.columns.values():
                values.clear()
            self.runs.clear()
            self.ended.clear()
            self._last.clear()
            self.current = None
            self._frame = None
            self.parameters.clear()

    def apply_events(self, events: list[Event], *, reset: bool = False) -> None:
        """Add the events a file reader gave (:mod:`~multiopt_lab._src.io.history_data`), in order.

        With ``reset``, forget everything first (a followed file was
        replaced: the events are the whole history again), under the same
        lock, so no reader sees the history empty.
        """
        rows: list[tuple] = []
        with self.lock:
            if reset:
                self.reset()
            for kind, payload in events:
                if kind == "row":
                    if payload[0] not in self.runs:
                        self.runs[payload[0]] = {}
                    rows.append(payload)
                    continue
                self.append(rows)
                rows = []
                if kind == "parameters":
                    for run in payload["run"].unique():
                        self.runs.setdefault(str(run), {})
                    self.parameters.append_rows(payload)
                elif kind == "run":
                    name, metadata = payload
                    self.runs[name] = dict(metadata)
                    self.current = name
                elif kind == "end":
                    self.ended.add(payload)
            self.append(rows)
            if self.current is None and self.runs:
                self.current = next(reversed(self.runs))

    def snapshot(self) -> HistoryData:
        """Copies of the rows, the runs and the finished runs, and the per-parameter
        frame, taken under the lock: what a file writer needs."""
        with self.lock:
            return HistoryData({name: list(values) for name, values in self.columns.items()},
                               {name: dict(info) for name, info in self.runs.items()},
                               set(self.ended), self.parameters.frame())

    # -- reads -------------------------------------------------------------
    def resolve(self, run: str | None) -> str:
        """``run``, or the current run when None; KeyError naming the known runs."""
        if run is None:
            run = self.current
        if run is None or run not in self.runs:
            raise KeyError(f"no run {run!r} in this history; its runs are {list(self.runs)}")
        return run

    def frame(self) -> pd.DataFrame:
        """All rows as a DataFrame (run, step, group, metric, value); cached until a change."""
        with self.lock:
            if self._frame is None:
                data = {name: list(values) for name, values in self.columns.items()}
                frame = pd.DataFrame(data, columns=list(COLUMNS))
                self._frame = frame.astype({"run": str, "step": "int64", "group": str,
                                            "metric": str, "value": "float64"})
            return self._frame

    def labels(self, run: str | None) -> tuple[str, ...]:
        """Group labels of ``run`` in partition order: the metadata's ``labels``, then in
        order of first appearance; ``"-"`` and ``"total"`` left out."""
        run = self.resolve(run)
        seen = dict.fromkeys(list(self.runs[run].get("labels") or ()))
        for (r, group, _metric) in list(self._last):
            if r == run and group not in (SCALAR_GROUP, TOTAL_GROUP):
                seen.setdefault(group)
        return tuple(seen)

    def last_value(self, metric: str, group: str, run: str | None) -> float | None:
        """The last value of ``metric`` in ``group`` of ``run``, or None."""
        found = self._last.get((self.resolve(run), group, metric))
        return None if found is None else found[1]

    def last_values(self, run: str | None) -> dict[str, dict[str, float]]:
        """``{group: {metric: last value}}`` of ``run``."""
        run = self.resolve(run)
        table: dict[str, dict[str, float]] = {}
        for (r, group, metric), (_step, value) in list(self._last.items()):
            if r == run:
                table.setdefault(group, {})[metric] = value
        return table

    def last_step(self, run: str | None) -> int | None:
        """The highest step recorded in ``run``, or None."""
        run = self.resolve(run)
        steps = [step for (r, _g, _m), (step, _v) in list(self._last.items()) if r == run]
        return max(steps) if steps else None

    def compare(self, metric: str, group: str, runs: Sequence[str] | None) -> pd.DataFrame:
        """``metric`` of ``group``: one column per run, one row per step."""
        chosen = list(self.runs if runs is None else runs)
        for run in chosen:
            self.resolve(run)
        frame = self.frame()
        picked = frame[(frame["metric"] == metric) & (frame["group"] == group)
                       & frame["run"].isin(chosen)]
        # A step recorded twice in a run (a continued run) keeps its last value.
        table = picked.pivot_table(index="step", columns="run", values="value", aggfunc="last")
        return table.reindex(columns=chosen).rename_axis(columns=None)
