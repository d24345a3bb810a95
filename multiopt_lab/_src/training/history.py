"""Recorded training steps, in tidy (long) form.

One row per ``(run, step, group, metric)``. The loss and any other scalar the
user records go in group ``"-"`` (:data:`SCALAR_GROUP`); the optimizer's
global totals in group ``"total"``; each parameter group under its label.
Per-parameter metrics (``per_parameter=True``) are kept apart, one row per
``(run, step, path, group, metric)`` in :attr:`History.parameters`.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from multiopt_lab._src.arguments import check_path
from multiopt_lab._src.device import describe_facts, device_facts
from multiopt_lab._src.display import html_for
from multiopt_lab._src.io.history_files import read_history, save_history
from multiopt_lab._src.io.history_follow import HistoryFollower, SkippedLines
from multiopt_lab._src.io.history_stream import HistoryStream
from multiopt_lab._src.optimizer.describe import optimizer_metadata
from multiopt_lab._src.text_fit import DEFAULT_WIDTH, clip
from multiopt_lab._src.training.history_input import (ParameterInput, check_metadata_labels,
                                                 check_name, group_rows)
from multiopt_lab._src.training.history_records import SCALAR_GROUP, TOTAL_GROUP, HistoryRecords
from multiopt_lab._src.training.history_subscribers import Subscriber, Subscribers

__all__ = ["History", "SCALAR_GROUP", "TOTAL_GROUP", "environment_metadata"]


def environment_metadata() -> dict[str, Any]:
    """Where and when a run happens: device, backend, mlx version, start time.
    """
    return {
        **device_facts(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


class History:
    """Per-step loss, scalars and per-group optimizer metrics of one or more runs.

    A History is its data (rows, per-parameter rows, runs and their
    metadata: :class:`~multiopt_lab._src.training.history_records.HistoryRecords`)
    and its subscribers (:meth:`subscribe`). Its files are handled in
    :mod:`multiopt_lab._src.io`, on plain data: :meth:`save` and :meth:`load`
    (:mod:`~multiopt_lab._src.io.history_files`), the stream :meth:`stream_to`
    appends to (:class:`~multiopt_lab._src.io.history_stream.HistoryStream`), and,
    for :meth:`follow`, the reader of files another process writes
    (:class:`~multiopt_lab._src.io.history_follow.HistoryFollower`).

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
        self._subscribers = Subscribers()
        self._parameter_input = ParameterInput()
        self._writer: HistoryStream | None = None
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
            check_metadata_labels(info)
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
        parameters: Any = None,
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
            parameters (optional): Every parameter's metrics:
                ``optimizer.parameter_metrics`` (``per_parameter=True``), or
                ``{path: {"group": label, metric: value, ...}}`` with the same
                metrics for every path. Kept in :attr:`parameters`.
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
        step = int(step)
        rows = group_rows(loss, metrics, scalars)
        block = None if parameters is None else self._parameter_input.check(parameters)
        records = self._records
        with records.lock:
            if run is None:
                run = records.current if records.current is not None else self.start_run()
            elif run not in records.runs:
                self.start_run(run)
            full = [(run, step, group, metric, value) for group, metric, value in rows]
            records.append(full)
            if block is not None:
                records.parameters.append_block(run, step, *block)
            if self._writer is not None:
                self._writer.write_rows(full)
                if block is not None:
                    self._writer.write_parameter_block(run, step, *block)
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

    @property
    def parameters(self) -> pd.DataFrame:
        """Every parameter's recorded metrics: columns run, step, path, group, metric, value.

        One row per (run, step, path, metric), recorded with
        ``per_parameter=True`` (metrics ``update_norm``, ``grad_norm``,
        ``param_norm``, ``update_ratio``: the update norm over the parameter
        norm before the step, as in the group rows). Paths come in tree
        order; the string columns are categoricals, so a long run stays
        small. Empty (with these columns) when nothing was recorded; cached
        until the next record.

        Example:
            >>> h = History()
            >>> h.record(1, parameters={"w": {"group": "sgd", "update_norm": 0.5}})
            >>> h.parameters.to_dict("records")
            [{'run': 'run1', 'step': 1, 'path': 'w', 'group': 'sgd', 'metric': 'update_norm', 'value': 0.5}]
        """
        with self._records.lock:
            return self._records.parameters.frame()

    def parameter_values(self, metric: str = "update_ratio", run: str | None = None) -> pd.Series:
        """Each parameter's last recorded value of ``metric`` in ``run`` (index: path, tree order).

        Empty when ``run`` recorded no per-parameter ``metric``; the step of
        the values is in the series' ``attrs["step"]``.

        Example:
            >>> h = History()
            >>> h.record(1, parameters={"w": {"group": "sgd", "update_ratio": 0.5}})
            >>> h.record(2, parameters={"w": {"group": "sgd", "update_ratio": 0.25}})
            >>> h.parameter_values().to_dict()
            {'w': 0.25}
        """
        records = self._records
        with records.lock:
            return records.parameters.latest(records.resolve(run), metric)

    def parameter_groups(self, run: str | None = None) -> dict[str, str]:
        """``{path: group}`` of the parameters ``run`` recorded per-parameter metrics for.

        Example:
            >>> h = History(); h.record(1, parameters={"w": {"group": "sgd", "update_norm": 1.0}})
            >>> h.parameter_groups()
            {'w': 'sgd'}
        """
        records = self._records
        with records.lock:
            return records.parameters.groups_of(records.resolve(run))

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
        """Write every run, with its metadata, to ``path`` (and the files beside it).

        ``.parquet`` writes Parquet (needs pyarrow), the run metadata in its
        schema; any other suffix writes a plain CSV that
        ``pandas.read_csv(path)`` reads into :attr:`frame`, with the run
        metadata beside it in ``<name>.runs.jsonl``. Per-parameter rows, when
        recorded, go to ``<name>.parameters.csv`` (or ``.parameters.parquet``),
        which ``pandas.read_csv`` reads into :attr:`parameters` (with
        ``dtype="category"`` for its string columns, to keep it small).
        Each file is written to a fresh temporary file beside it and renamed
        over it, so a failure never leaves a half-written file in place, nor
        any temporary file. (Run, group or path names that read as numbers
        or as ``NA`` need ``pandas.read_csv(path, dtype=str,
        keep_default_na=False)`` for the string columns.)

        Example:
            >>> import os, tempfile
            >>> h = History(); h.record(1, loss=1.0)
            >>> path = os.path.join(tempfile.mkdtemp(), "h.csv"); h.save(path)
            >>> History.load(path).last("loss")
            1.0
        """
        save_history(path, self._records.snapshot())

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        """Read a history saved with :meth:`save` (or streamed with :meth:`stream_to`).

        The files beside it are read too; a CSV of the earlier form (with
        ``#run`` lines among the rows) loads as well.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: The file is not a history file (the line or row is named).
        """
        history = cls()
        history._records.apply_events(read_history(path))
        return history

    @classmethod
    def follow(cls, path: str | os.PathLike) -> History:
        """A history that reads ``path`` as another process writes it.

        Call :meth:`refresh` to read what was appended (only new bytes are
        read), or :meth:`watch` to refresh in a background thread. The file
        may not exist yet; the files beside it (runs, per-parameter rows) are
        followed too. A line that is not a history line is skipped with
        a warning and counted in :attr:`skipped_lines`; the rows around it
        are kept. A file replaced at that path is read again from its start.

        Example:
            >>> import os, tempfile
            >>> follower = History.follow(os.path.join(tempfile.mkdtemp(), "later.csv"))
            >>> follower.refresh()
            0
        """
        history = cls()
        history._follower = HistoryFollower(path)
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
        update = self._following("refresh").refresh(self._apply_followed)
        if update.changed:
            self._notify("refresh")
        if update.ended:
            self._notify("end_run")
        return update.rows

    def _apply_followed(self, events: list, restarted: bool) -> None:
        self._records.apply_events(events, reset=restarted)

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
        self._following("watch").watch(self.refresh, interval)

    def stop_watching(self) -> None:
        """Stop the thread :meth:`watch` started (no-op if none)."""
        if self._follower is not None:
            self._follower.stop()

    def stream_to(self, path: str | os.PathLike) -> None:
        """Append every later record to ``path`` (and the files beside it) and flush at once.

        What is already recorded is written first, so the files are
        complete. An existing non-empty file is refused, so streaming never
        mixes two histories (files beside an empty or missing one are
        replaced). Another process can read them with :meth:`follow`.

        Raises:
            FileExistsError: ``path`` exists and is not empty.
        """
        records = self._records
        with records.lock:
            writer = HistoryStream(path, records.snapshot())  # refuses a file that holds data
            self.close()
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
        return self._subscribers.add(callback)

    def _notify(self, event: str) -> None:
        self._subscribers.notify(self, event)
