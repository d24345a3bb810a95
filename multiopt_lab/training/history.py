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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from multiopt_lab.arguments import check_path
from multiopt_lab.device import describe_facts, device_facts
from multiopt_lab.display import html_for
from multiopt_lab.optimizer.describe import optimizer_metadata
from multiopt_lab.training import history_io
from multiopt_lab.training.history_files import HistoryFollower, SkippedLines, save_history
from multiopt_lab.training.history_io import check_name
from multiopt_lab.training.history_records import SCALAR_GROUP, TOTAL_GROUP, HistoryRecords
from multiopt_lab.text_fit import DEFAULT_WIDTH, clip

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


def _check_metadata_labels(metadata: Mapping[str, Any]) -> None:
    labels = metadata.get("labels")
    if isinstance(labels, (list, tuple)):
        for label in labels:
            if isinstance(label, str):
                check_name(label, "group label")


class History:
    """Per-step loss, scalars and per-group optimizer metrics of one or more runs.

    It holds three parts: the records (rows, runs, last values:
    :class:`~multiopt_lab.training.history_records.HistoryRecords`), a file
    it streams to (:meth:`stream_to`), and, for :meth:`follow`, the reader
    of a file another process writes
    (:class:`~multiopt_lab.training.history_files.HistoryFollower`).

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
        self._records = HistoryRecords()
        self._subscribers: list[Subscriber] = []
        self._writer: history_io.CsvAppender | None = None
        self._follower: HistoryFollower | None = None
        if path is not None:
            check_path(path, "History()", "path")
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
            ValueError: A run called ``name`` already exists, or the name or
                a group label holds a line break or another control character (a
                file could not hold it).
        """
        records = self._records
        with records.lock:
            if name is None:
                number = len(records.runs) + 1
                while f"run{number}" in records.runs:
                    number += 1
                name = f"run{number}"
            check_name(name, "run name")
            if name in records.runs:
                raise ValueError(f"a run called {name!r} already exists; pick another name or omit it")
            described = {} if optimizer is None else optimizer_metadata(optimizer)
            info = {**environment_metadata(), **described, **dict(metadata or {})}
            _check_metadata_labels(info)
            records.runs[name] = info
            records.current = name
            if self._writer is not None:
                self._writer.write_run(name, info)
        self._notify("start_run")
        return name

    def select_run(self, run: str) -> None:
        """Make an existing run the current one again (to continue it)."""
        records = self._records
        with records.lock:
            records.current = records.resolve(run)
            records.ended.discard(run)

    def end_run(self, run: str | None = None) -> None:
        """Mark a run as finished (followers and monitors draw their last frame)."""
        records = self._records
        with records.lock:
            run = records.resolve(run)
            records.ended.add(run)
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

        Raises:
            TypeError: A value is not a scalar number. Nothing is recorded then.
            ValueError: A group or metric name holds a line break or another
                control character, or ``metrics`` names the scalar group ``"-"``.
                Nothing is recorded then.

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
            rows.append((SCALAR_GROUP, check_name(metric, "metric name"), _as_float(value, metric)))
        for group, values in (metrics or {}).items():
            if not isinstance(values, Mapping):
                raise TypeError(f"metrics must map group -> {{metric: value}}, found {group!r}: {values!r}")
            group = check_name(str(group), "group label")
            if group == SCALAR_GROUP:
                raise ValueError(f"metrics holds the group {SCALAR_GROUP!r}, which is the group of "
                                 "the loss and other scalars; record those as keyword arguments "
                                 "(history.record(step, loss=..., accuracy=...)), or name the "
                                 "group otherwise")
            for metric, value in values.items():
                rows.append((group, check_name(str(metric), "metric name"),
                             _as_float(value, f"{group}.{metric}")))
        records = self._records
        with records.lock:
            if run is None:
                run = records.current if records.current is not None else self.start_run()
            elif run not in records.runs:
                self.start_run(run)
            full = [(run, step, group, metric, value) for group, metric, value in rows]
            records.append(full)
            if self._writer is not None:
                self._writer.write_rows(full)
        self._notify("record")

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        # One line that fits the text forms' width: the first runs, and how many more.
        runs = [clip(repr(run), 40) for run in self._records.runs]
        for shown in range(len(runs), 0, -1):
            more = f", ... {len(runs) - shown:,} more" if shown < len(runs) else ""
            text = f"History(runs=[{', '.join(runs[:shown])}{more}], rows={len(self)})"
            if len(text) <= DEFAULT_WIDTH or shown == 1:
                return text
        return f"History(runs=[], rows={len(self)})"

    def _repr_html_(self) -> str | None:
        # What a notebook shows when a cell ends with train(...): the runs as a small table.
        return html_for("history", self)

    def summary(self) -> pd.DataFrame:
        """One row per run: last step, rows, last loss, groups, device, and whether it ended.

        Example:
            >>> h = History()
            >>> h.record(1, loss=2.0, run="a"); h.record(2, loss=1.5, run="a"); h.end_run()
            >>> print(h.summary().to_string(columns=["last step", "rows", "last loss", "ended"]))
                 last step  rows  last loss  ended
            run
            a            2     2        1.5   True
        """
        counts = self.frame["run"].value_counts()
        rows = [{"run": run, "last step": self.last_step(run), "rows": int(counts.get(run, 0)),
                 "last loss": self.last("loss", run=run), "groups": ", ".join(self.labels(run)),
                 "device": describe_facts(self.metadata(run)), "ended": self.is_finished(run)}
                for run in self.runs]
        columns = ["run", "last step", "rows", "last loss", "groups", "device", "ended"]
        return pd.DataFrame(rows, columns=columns).set_index("run")

    # -- reading ---------------------------------------------------------
    @property
    def frame(self) -> pd.DataFrame:
        """All rows as a DataFrame (run, step, group, metric, value); cached."""
        return self._records.frame()

    def to_frame(self) -> pd.DataFrame:
        """A copy of :attr:`frame` that the caller may change."""
        return self.frame.copy()

    @property
    def runs(self) -> tuple[str, ...]:
        """Run names, oldest first."""
        return tuple(self._records.runs)

    @property
    def current_run(self) -> str | None:
        """The run records go to by default."""
        return self._records.current

    def metadata(self, run: str | None = None) -> dict[str, Any]:
        """A copy of the metadata of ``run`` (default: the current run)."""
        records = self._records
        return dict(records.runs[records.resolve(run)])

    def is_finished(self, run: str | None = None) -> bool:
        """Whether :meth:`end_run` was called for ``run``."""
        return self._records.resolve(run) in self._records.ended

    def labels(self, run: str | None = None) -> tuple[str, ...]:
        """Group labels of ``run`` in partition order (colour order).

        Taken from the metadata's ``labels`` when the run has one, otherwise
        in order of first appearance; ``"-"`` and ``"total"`` are left out.
        """
        return self._records.labels(run)

    def last(self, metric: str = "loss", *, group: str = SCALAR_GROUP, run: str | None = None) -> float | None:
        """The last value of ``metric`` in ``group``, or ``None`` if never recorded."""
        return self._records.last_value(metric, group, run)

    def last_values(self, run: str | None = None) -> dict[str, dict[str, float]]:
        """``{group: {metric: last value}}`` for ``run`` (default: current)."""
        return self._records.last_values(run)

    def last_step(self, run: str | None = None) -> int | None:
        """The highest step recorded in ``run``, or ``None``."""
        return self._records.last_step(run)

    def compare(self, metric: str = "loss", *, group: str = SCALAR_GROUP,
                runs: Sequence[str] | None = None) -> pd.DataFrame:
        """``metric`` of ``group`` side by side: one column per run, one row per step.

        Example:
            >>> h = History()
            >>> h.record(1, loss=1.0, run="sgd"); h.record(1, loss=0.5, run="adam")
            >>> h.compare().to_dict()
            {'sgd': {1: 1.0}, 'adam': {1: 0.5}}
        """
        return self._records.compare(metric, group, runs)

    # -- files -----------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write every run, with its metadata, to ``path``.

        ``.parquet`` writes Parquet (needs pyarrow); any other suffix writes
        the CSV format. The file is written to a fresh temporary file beside
        ``path`` and renamed over it, so a failure never leaves a
        half-written file in place, nor any temporary file.

        Example:
            >>> import os, tempfile
            >>> h = History(); h.record(1, loss=1.0)
            >>> path = os.path.join(tempfile.mkdtemp(), "h.csv"); h.save(path)
            >>> History.load(path).last("loss")
            1.0
        """
        save_history(self._records, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "History":
        """Read a history saved with :meth:`save` (or streamed with :meth:`stream_to`).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: The file is not a history file (the line or row is named).
        """
        history = cls()
        history._records.apply_events(history_io.read_file(path))
        return history

    @classmethod
    def follow(cls, path: str | os.PathLike) -> "History":
        """A history that reads ``path`` as another process writes it.

        Call :meth:`refresh` to read what was appended (only new bytes are
        read), or :meth:`watch` to refresh in a background thread. The file
        may not exist yet. A line that is not a history line is skipped with
        a warning and counted in :attr:`skipped_lines`; the rows around it
        are kept. A file replaced at that path is read again from its start.

        Example:
            >>> import os, tempfile
            >>> follower = History.follow(os.path.join(tempfile.mkdtemp(), "later.csv"))
            >>> follower.refresh()
            0
        """
        history = cls()
        history._follower = HistoryFollower(path, history._records, history._notify)
        history.refresh()
        return history

    def _following(self, what: str) -> HistoryFollower:
        if self._follower is None:
            raise ValueError(f"{what}() needs a history made by History.follow(path)")
        return self._follower

    def refresh(self) -> int:
        """Read the rows appended to the followed file; returns how many.

        Raises:
            ValueError: This history does not follow a file.
        """
        return self._following("refresh").refresh()

    @property
    def skipped_lines(self) -> SkippedLines:
        """Lines of the followed file that were skipped: how many, and the last few
        with their line numbers (none for a history that follows no file).

        Example:
            >>> History().skipped_lines.count
            0
        """
        return SkippedLines() if self._follower is None else self._follower.skipped

    def watch(self, interval: float = 0.5) -> None:
        """Call :meth:`refresh` every ``interval`` seconds in a daemon thread.

        Subscribers are then notified from that thread. A refresh that fails
        (an unreadable file, a subscriber that raises) does not stop it.
        Stop with :meth:`stop_watching`.
        """
        self._following("watch").watch(interval)

    def stop_watching(self) -> None:
        """Stop the thread :meth:`watch` started (no-op if none)."""
        if self._follower is not None:
            self._follower.stop()

    def stream_to(self, path: str | os.PathLike) -> None:
        """Append every later record to ``path`` and flush it at once.

        What is already recorded is written first, so the file is complete.
        An existing non-empty file is refused, so streaming never mixes two
        histories. Another process can read it with :meth:`follow`.

        Raises:
            FileExistsError: ``path`` exists and is not empty.
        """
        path = os.fspath(path)
        if os.path.exists(path) and os.path.getsize(path) > 0:
            raise FileExistsError(
                f"{path!r} already holds data; stream to a new file, or load it with History.load()"
            )
        records = self._records
        with records.lock:
            self.close()
            writer = history_io.CsvAppender(path)
            try:
                columns, runs, ended = records.snapshot()
                for chunk in history_io.csv_chunks(columns, runs, ended):
                    if not chunk.startswith(history_io.HEADER):  # the appender wrote it
                        writer.write_text(chunk)
            except BaseException:
                writer.close()
                raise
            self._writer = writer

    def close(self) -> None:
        """Stop streaming to a file (the file stays)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

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
