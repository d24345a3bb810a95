"""Recorded training steps, in tidy (long) form.

One row per ``(run, step, group, metric)``. The loss and any other scalar the
user records go in group ``"-"`` (:data:`SCALAR_GROUP`); the optimizer's
global totals in group ``"total"``; each parameter group under its label.

Example:
    >>> history = History()
    >>> history.record(1, loss=2.5)
    >>> history.record(2, loss=2.0, metrics={"adam": {"update_norm": 0.1}})
    >>> history.frame.shape
    (3, 5)
    >>> history.last("loss")
    2.0
"""

from __future__ import annotations

import datetime
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import mlx.core as mx
import pandas as pd

from multiopt_lab.device import device_facts
from multiopt_lab.optimizer.describe import optimizer_metadata
from multiopt_lab.training import history_io
from multiopt_lab.training.history_files import HistoryFilesMixin
from multiopt_lab.training.history_io import COLUMNS
from multiopt_lab.training.history_queries import SCALAR_GROUP, TOTAL_GROUP, HistoryQueriesMixin

__all__ = ["History", "SCALAR_GROUP", "TOTAL_GROUP", "environment_metadata"]


Subscriber = Callable[["History", str], None]


def environment_metadata() -> dict[str, Any]:
    """Where and when a run happens: device, backend, mlx version, start time.

    Example:
        >>> sorted(environment_metadata())[:5]
        ['backend', 'created', 'device', 'device_name', 'mlx_version']
    """
    return {
        **device_facts(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _as_float(value: Any, what: str) -> float:
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what} must be a scalar number (float or 0-d array), found {value!r}") from error


class History(HistoryQueriesMixin, HistoryFilesMixin):
    """Per-step loss, scalars and per-group optimizer metrics of one or more runs.

    Saving, loading and following a file being written are described in
    :class:`~multiopt_lab.training.history_files.HistoryFilesMixin`.

    Args:
        path (str | os.PathLike, optional): Stream every record to this CSV
            file as it happens (see :meth:`stream_to`). Default: ``None``.

    Example:
        >>> history = History()
        >>> history.start_run("sgd", {"note": "baseline"})
        'sgd'
        >>> history.record(1, loss=1.0, accuracy=0.5)
        >>> history.runs
        ('sgd',)
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self._columns: dict[str, list] = {name: [] for name in COLUMNS}
        self._runs: dict[str, dict[str, Any]] = {}
        self._ended: set[str] = set()
        self._current: str | None = None
        self._last: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._frame: pd.DataFrame | None = None
        self._subscribers: list[Subscriber] = []
        self._lock = threading.RLock()
        self._writer: history_io.CsvAppender | None = None
        self._tail: history_io.CsvTail | None = None
        self._watcher: threading.Thread | None = None
        self._stop_watching = threading.Event()
        if path is not None:
            self.stream_to(path)

    # -- recording -------------------------------------------------------
    def start_run(self, name: str | None = None, metadata: Mapping[str, Any] | None = None, *,
                  optimizer: Any = None) -> str:
        """Start a run; later records go to it. Returns its name.

        Args:
            name (str, optional): Defaults to ``run1``, ``run2``, ...
            metadata (Mapping, optional): JSON-friendly facts about the run;
                device, mlx version and start time are added.
            optimizer (Optimizer, optional): Also record its groups, rules
                and hyperparameters (what :func:`multiopt_lab.train` records).

        Example:
            >>> import mlx.optimizers as optim
            >>> history = History()
            >>> history.start_run("baseline", optimizer=optim.SGD(0.1))
            'baseline'
            >>> history.metadata("baseline")["optimizer"]
            'SGD'

        Raises:
            ValueError: A run called ``name`` already exists.
        """
        with self._lock:
            if name is None:
                number = len(self._runs) + 1
                while f"run{number}" in self._runs:
                    number += 1
                name = f"run{number}"
            if name in self._runs:
                raise ValueError(f"a run called {name!r} already exists; pick another name or omit it")
            described = {} if optimizer is None else optimizer_metadata(optimizer)
            info = {**environment_metadata(), **described, **dict(metadata or {})}
            self._runs[name] = info
            self._current = name
            if self._writer is not None:
                self._writer.write_run(name, info)
        self._notify("start_run")
        return name

    def select_run(self, run: str) -> None:
        """Make an existing run the current one again (to continue it)."""
        with self._lock:
            self._current = self._resolve(run)
            self._ended.discard(run)

    def end_run(self, run: str | None = None) -> None:
        """Mark a run as finished (followers and monitors draw their last frame)."""
        with self._lock:
            run = self._resolve(run)
            self._ended.add(run)
            if self._writer is not None:
                self._writer.write_end(run)
        self._notify("end_run")

    def record(
        self,
        step: int,
        *,
        loss: Any = None,
        metrics: Mapping[str, Mapping[str, Any]] | None = None,
        run: str | None = None,
        **scalars: Any,
    ) -> None:
        """Record the values of one step.

        Args:
            step (int): The step number.
            loss (float | mx.array, optional): Recorded as metric ``loss`` of
                group ``"-"``.
            metrics (Mapping, optional): ``{group: {metric: value}}``, the
                shape of ``MultiOptimizer.metrics``.
            run (str, optional): Defaults to the current run (one is started
                if there is none).
            **scalars: Other scalars (``accuracy=0.9``), group ``"-"``.

        Example:
            >>> h = History(); h.record(3, loss=0.5, metrics={"total": {"grad_norm": 2.0}})
            >>> h.last("grad_norm", group="total")
            2.0
        """
        rows = []
        step = int(step)
        if loss is not None:
            scalars = {"loss": loss, **scalars}
        for metric, value in scalars.items():
            rows.append((SCALAR_GROUP, metric, _as_float(value, metric)))
        for group, values in (metrics or {}).items():
            if not isinstance(values, Mapping):
                raise TypeError(f"metrics must map group -> {{metric: value}}, found {group!r}: {values!r}")
            for metric, value in values.items():
                rows.append((str(group), str(metric), _as_float(value, f"{group}.{metric}")))
        with self._lock:
            if run is None:
                run = self._current if self._current is not None else self.start_run()
            elif run not in self._runs:
                self.start_run(run)
            full = [(run, step, group, metric, value) for group, metric, value in rows]
            self._append(full)
            if self._writer is not None:
                self._writer.write_rows(full)
        self._notify("record")

    def _append(self, rows: list[tuple]) -> None:
        columns = self._columns
        for run, step, group, metric, value in rows:
            columns["run"].append(run)
            columns["step"].append(step)
            columns["group"].append(group)
            columns["metric"].append(metric)
            columns["value"].append(value)
            self._last[(run, group, metric)] = (step, value)
        if rows:
            self._frame = None

    def __len__(self) -> int:
        return len(self._columns["step"])

    def __repr__(self) -> str:
        return f"History(runs={list(self._runs)}, rows={len(self)})"

    # -- subscribers -----------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(history, event)`` after each change; returns an unsubscribe function.

        ``event`` is ``"record"``, ``"start_run"``, ``"end_run"`` or
        ``"refresh"`` (rows read from a followed file). Keep callbacks cheap:
        they run on the training thread.

        Example:
            >>> h = History(); seen = []
            >>> stop = h.subscribe(lambda history, event: seen.append(event))
            >>> h.record(1, loss=1.0); stop(); h.record(2, loss=0.5)
            >>> seen
            ['start_run', 'record']
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self, event: str) -> None:
        for callback in list(self._subscribers):
            callback(self, event)
