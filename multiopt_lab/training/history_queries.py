"""Read-only views of a History: the frame, runs, metadata, last values.

Example:
    >>> from multiopt_lab.training.history import History
    >>> h = History(); h.record(1, loss=0.5); h.record(2, loss=0.25)
    >>> h.last_step(), h.last("loss"), h.runs
    (2, 0.25, ('run1',))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from multiopt_lab.partition.labels import TOTAL_LABEL
from multiopt_lab.training.history_io import COLUMNS

__all__ = ["HistoryQueriesMixin", "SCALAR_GROUP", "TOTAL_GROUP"]

#: Group of the loss and of other scalars that belong to no parameter group.
SCALAR_GROUP = "-"
#: Group of the optimizer's totals over all parameters (the one reserved label).
TOTAL_GROUP = TOTAL_LABEL


class HistoryQueriesMixin:
    """Reading methods of :class:`~multiopt_lab.training.history.History`."""

    @property
    def frame(self) -> pd.DataFrame:
        """All rows as a DataFrame (run, step, group, metric, value); cached."""
        with self._lock:
            if self._frame is None:
                data = {name: list(values) for name, values in self._columns.items()}
                frame = pd.DataFrame(data, columns=list(COLUMNS))
                self._frame = frame.astype({"run": str, "step": "int64", "group": str, "metric": str, "value": "float64"})
            return self._frame

    def to_frame(self) -> pd.DataFrame:
        """A copy of :attr:`frame` that the caller may change."""
        return self.frame.copy()

    @property
    def runs(self) -> tuple[str, ...]:
        """Run names, oldest first."""
        return tuple(self._runs)

    @property
    def current_run(self) -> str | None:
        """The run records go to by default."""
        return self._current

    def metadata(self, run: str | None = None) -> dict[str, Any]:
        """A copy of the metadata of ``run`` (default: the current run)."""
        return dict(self._runs[self._resolve(run)])

    def is_finished(self, run: str | None = None) -> bool:
        """Whether :meth:`end_run` was called for ``run``."""
        return self._resolve(run) in self._ended

    def labels(self, run: str | None = None) -> tuple[str, ...]:
        """Group labels of ``run`` in partition order (colour order).

        Taken from the metadata's ``labels`` when the run has one, otherwise
        in order of first appearance; ``"-"`` and ``"total"`` are left out.
        """
        run = self._resolve(run)
        known = list(self._runs[run].get("labels") or ())
        seen = dict.fromkeys(known)
        for (r, group, _metric) in list(self._last):
            if r == run and group not in (SCALAR_GROUP, TOTAL_GROUP):
                seen.setdefault(group)
        return tuple(seen)

    def last(self, metric: str = "loss", *, group: str = SCALAR_GROUP, run: str | None = None) -> float | None:
        """The last value of ``metric`` in ``group``, or ``None`` if never recorded."""
        found = self._last.get((self._resolve(run), group, metric))
        return None if found is None else found[1]

    def last_values(self, run: str | None = None) -> dict[str, dict[str, float]]:
        """``{group: {metric: last value}}`` for ``run`` (default: current)."""
        run = self._resolve(run)
        table: dict[str, dict[str, float]] = {}
        for (r, group, metric), (_step, value) in list(self._last.items()):
            if r == run:
                table.setdefault(group, {})[metric] = value
        return table

    def last_step(self, run: str | None = None) -> int | None:
        """The highest step recorded in ``run``, or ``None``."""
        run = self._resolve(run)
        steps = [step for (r, _g, _m), (step, _v) in list(self._last.items()) if r == run]
        return max(steps) if steps else None

    def compare(self, metric: str = "loss", *, group: str = SCALAR_GROUP, runs: Sequence[str] | None = None) -> pd.DataFrame:
        """``metric`` of ``group`` side by side: one column per run, one row per step.

        Example:
            >>> from multiopt_lab.training.history import History
            >>> h = History()
            >>> h.record(1, loss=1.0, run="sgd"); h.record(1, loss=0.5, run="adam")
            >>> h.compare().to_dict()
            {'sgd': {1: 1.0}, 'adam': {1: 0.5}}
        """
        chosen = list(self.runs if runs is None else runs)
        for run in chosen:
            self._resolve(run)
        frame = self.frame
        picked = frame[(frame["metric"] == metric) & (frame["group"] == group) & frame["run"].isin(chosen)]
        # A step recorded twice in a run (a continued run) keeps its last value.
        table = picked.pivot_table(index="step", columns="run", values="value", aggfunc="last")
        return table.reindex(columns=chosen).rename_axis(columns=None)

    def _resolve(self, run: str | None) -> str:
        if run is None:
            run = self._current
        if run is None or run not in self._runs:
            raise KeyError(f"no run {run!r} in this history; its runs are {list(self._runs)}")
        return run
