"""Saving a History to files, streaming to them, and following files another process writes.

The formats are described in :mod:`multiopt_lab.training.history_io` (the
rows) and :mod:`multiopt_lab.training.history_sidecars` (the runs' metadata
and the per-parameter rows, beside it). :func:`save_history` writes each
file through :func:`~multiopt_lab.io.atomic.write_atomically`;
:class:`HistoryStream` appends to them as a History records;
:class:`HistoryFollower` is the part of a followed History that reads.

Example:
    >>> import os, tempfile
    >>> from multiopt_lab.training.history import History
    >>> path = os.path.join(tempfile.mkdtemp(), "run.csv")
    >>> writer = History(path=path)          # streams as it records
    >>> writer.record(1, loss=2.0)
    >>> follower = History.follow(path)      # e.g. in another process
    >>> follower.last("loss")
    2.0
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from multiopt_lab.io.atomic import write_atomically
from multiopt_lab.training import history_io
from multiopt_lab.training.history_parameters import PARAMETER_COLUMNS
from multiopt_lab.training.history_parquet import write_parquet, write_parameters_parquet
from multiopt_lab.training.history_records import HistoryRecords
from multiopt_lab.training.history_sidecars import (
    PARAMETER_HEADER,
    format_end_event,
    format_parameter_rows,
    format_run_event,
    parse_parameter_lines,
    parse_run_lines,
    read_parameter_csv,
    read_runs_file,
    run_event_lines,
    sidecar_paths,
)

__all__ = ["save_history", "read_history", "HistoryStream", "HistoryFollower", "SkippedLines"]


def _write_or_remove(path: str, write: Callable | None) -> None:
    # A sidecar with nothing to hold is not written, and one left from an
    # earlier save at that path is removed (it would be read with this file).
    if write is not None:
        write_atomically(path, write)
    elif os.path.exists(path):
        os.remove(path)


def save_history(records: HistoryRecords, path: str | os.PathLike) -> None:
    """Write every run of ``records`` to ``path``: Parquet for ``.parquet``, CSV otherwise.

    Beside a CSV: the runs' metadata (``.runs.jsonl``) and, when there are
    any, the per-parameter rows (``.parameters.csv``); beside a Parquet
    file, the per-parameter rows (``.parameters.parquet``). Each file is
    written whole or not at all.

    Example:
        >>> import os, tempfile
        >>> records = HistoryRecords(); records.runs["a"] = {}
        >>> records.append([("a", 1, "-", "loss", 0.5)])
        >>> path = os.path.join(tempfile.mkdtemp(), "h.csv"); save_history(records, path)
        >>> open(path).read().splitlines()[1]
        '"a",1,"-","loss",0.5'
    """
    path = os.fspath(path)
    with records.lock:
        columns, runs, ended = records.snapshot()
        parameters = records.parameters.frame()
    runs_path, parameters_path = sidecar_paths(path)
    if path.endswith(".parquet"):
        _write_or_remove(parameters_path, (lambda file: write_parameters_parquet(file, parameters))
                         if len(parameters) else None)
        write_atomically(path, lambda file: write_parquet(file, columns, runs, ended))
        return

    def write_parameters(file) -> None:
        data = {name: (parameters[name].astype(object).to_numpy()
                       if name in ("run", "path", "group", "metric") else parameters[name].to_numpy())
                for name in PARAMETER_COLUMNS}
        for chunk in history_io.csv_chunks(data, PARAMETER_COLUMNS, PARAMETER_HEADER):
            file.write(chunk.encode("utf-8"))

    def write_csv(file) -> None:
        for chunk in history_io.csv_chunks(columns):
            file.write(chunk.encode("utf-8"))

    text = run_event_lines(runs, ended)
    _write_or_remove(parameters_path, write_parameters if len(parameters) else None)
    _write_or_remove(runs_path, (lambda file: file.write(text.encode("utf-8"))) if text else None)
    write_atomically(path, write_csv)


def read_history(path: str | os.PathLike) -> list[tuple[str, Any]]:
    """Every event of a saved history: its runs, its rows and its per-parameter rows.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: A file is not a history file (the line or row is named).
    """
    path = os.fspath(path)
    runs_path, parameters_path = sidecar_paths(path)
    if path.endswith(".parquet"):
        from multiopt_lab.training.history_parquet import read_parameters_parquet, read_parquet

        events = read_parquet(path)
        parameters = read_parameters_parquet(parameters_path)
    else:
        rows = history_io.read_file(path)  # first: a missing file says so
        events = read_runs_file(runs_path) + rows
        parameters = read_parameter_csv(parameters_path)
    if parameters is not None and len(parameters):
        events.append(("parameters", parameters))
    return events


class HistoryStream:
    """Appends what a History records to its files, flushing after every write.

    The rows go to ``path``, run starts and ends to its runs file, and
    per-parameter rows to its per-parameter file (created at the first).

    Args:
        path (str | os.PathLike): The history file (missing or empty).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "h.csv")
        >>> stream = HistoryStream(path); stream.write_run("a", {})
        >>> stream.write_rows([("a", 1, "-", "loss", 1.0)]); stream.close()
        >>> open(path).read().splitlines()
        ['"run","step","group","metric","value"', '"a",1,"-","loss",1.0']
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self.runs_path, self.parameters_path = sidecar_paths(self.path)
        # Sidecars left beside an empty or missing history file belong to no history.
        for stale in (self.runs_path, self.parameters_path):
            if os.path.exists(stale):
                os.remove(stale)
        self._rows = history_io.CsvAppender(self.path)
        self._runs = history_io.CsvAppender(self.runs_path, header=None)
        self._parameters: history_io.CsvAppender | None = None

    def write_rows(self, rows: list[tuple]) -> None:
        """Append group rows ``(run, step, group, metric, value)``."""
        if rows:
            self._rows.write_rows(rows)

    def write_parameter_text(self, text: str) -> None:
        """Append per-parameter rows already formatted."""
        if not text:
            return
        if self._parameters is None:
            self._parameters = history_io.CsvAppender(self.parameters_path, header=PARAMETER_HEADER)
        self._parameters.write_text(text)

    def write_parameter_rows(self, rows) -> None:
        """Append per-parameter rows ``(run, step, path, group, metric, value)``."""
        self.write_parameter_text(format_parameter_rows(rows))

    def write_run(self, run: str, metadata: dict[str, Any]) -> None:
        """Append the start of ``run``."""
        self._runs.write_text(format_run_event(run, metadata))

    def write_end(self, run: str) -> None:
        """Append the end of ``run``."""
        self._runs.write_text(format_end_event(run))

    def close(self) -> None:
        """Close every file (idempotent)."""
        for appender in (self._rows, self._runs, self._parameters):
            if appender is not None:
                appender.close()


@dataclass(frozen=True)
class SkippedLines:
    """Lines of a followed file that were not history lines, and were skipped.

    Attributes:
        count (int): How many since the file was (re)read from its start.
        last (tuple[tuple[int, str], ...]): The last few: (line number, what is wrong).

    Example:
        >>> print(SkippedLines(1, ((7, "expected 5 fields"),)))
        1 line skipped; line 7: expected 5 fields
    """

    count: int = 0
    last: tuple[tuple[int, str], ...] = ()

    def __str__(self) -> str:
        if not self.count:
            return "no line skipped"
        shown = "; ".join(f"line {number}: {problem}" for number, problem in self.last[-3:])
        return f"{self.count} line{'s' * (self.count != 1)} skipped; {shown}"


class HistoryFollower:
    """Reads what another process appends to a history's files into ``records``.

    It follows the three files of a history (the rows, the runs file and
    the per-parameter file; any may not exist yet). Bad lines are skipped
    and counted (:attr:`skipped`), with a warning that names them; the good
    rows around them are kept. When any of the files is replaced, all are
    read again from their start. :meth:`watch` refreshes on a daemon thread
    that outlives any failure of one refresh (kept in :attr:`last_error`).

    Args:
        path (str | os.PathLike): The history file (it may not exist yet).
        records (HistoryRecords): Where the rows go.
        notify (Callable[[str], None]): Called with ``"refresh"`` / ``"end_run"``
            after a refresh changed something (outside the records' lock).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "h.csv")
        >>> follower = HistoryFollower(path, HistoryRecords(), lambda event: None)
        >>> follower.refresh(), str(follower.skipped)
        (0, 'no line skipped')
    """

    def __init__(self, path: str | os.PathLike, records: HistoryRecords,
                 notify: Callable[[str], None]) -> None:
        self.path = os.fspath(path)
        self.records, self.notify = records, notify
        runs_path, parameters_path = sidecar_paths(self.path)
        self.tail = history_io.CsvTail(path)
        self.runs_tail = history_io.CsvTail(runs_path, parse_run_lines)
        self.parameters_tail = history_io.CsvTail(parameters_path, parse_parameter_lines)
        self.last_error: BaseException | None = None
        self._warned = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def _tails(self) -> tuple:
        return self.tail, self.runs_tail, self.parameters_tail

    def _read(self) -> tuple[list, bool]:
        # The runs file before the rows (a run's start is written before its
        # rows, its end after them) and again after (a run started while the
        # rows were read): every row finds its run's metadata.
        events: list = []
        restarted = False
        for tail in (self.runs_tail, self.tail, self.parameters_tail, self.runs_tail):
            events += tail.read_events()
            restarted = restarted or tail.restarted
        return events, restarted

    @property
    def skipped(self) -> SkippedLines:
        """The lines skipped so far (since the files were last read from their start)."""
        last = list(self.tail.last_bad)
        for tail in self._tails[1:]:
            last += [(number, f"{os.path.basename(tail.path)}: {problem}")
                     for number, problem in tail.last_bad]
        return SkippedLines(sum(t.bad_lines for t in self._tails), tuple(last[-20:]))

    def refresh(self) -> int:
        """Read the rows appended since the last refresh; returns how many."""
        with self.records.lock:
            events, restarted = self._read()
            if restarted:  # one file replaced: read all of them again
                for tail in self._tails:
                    tail.restart()
                events, _ = self._read()
                self.records.reset()
                self._warned = 0
            added = self.records.apply_events(events)
        bad_lines = sum(t.bad_lines for t in self._tails)
        if bad_lines > self._warned:
            new = bad_lines - self._warned
            self._warned = bad_lines
            warnings.warn(f"History.follow({self.path!r}): skipped {new} line"
                          f"{'s' * (new != 1)} that {'are' if new != 1 else 'is'} not history "
                          f"rows ({self.skipped}); the rows around them are kept",
                          RuntimeWarning, stacklevel=2)
        if events or restarted:
            self.notify("refresh")
        if any(kind == "end" for kind, _ in events):
            self.notify("end_run")
        return added

    def watch(self, interval: float) -> None:
        """Call :meth:`refresh` every ``interval`` seconds on a daemon thread (once)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(interval,),
                                        name="multiopt-lab-history-watch", daemon=True)
        self._thread.start()

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.refresh()
            except Exception as error:  # noqa: BLE001 - a monitor must not stop for one bad read
                self.last_error = error

    def stop(self) -> None:
        """Stop the thread :meth:`watch` started (no-op if none)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def watching(self) -> bool:
        """Whether the watch thread runs."""
        return self._thread is not None and self._thread.is_alive()


def load_events(path: str | os.PathLike) -> list[tuple[str, Any]]:
    """All events of a history file (CSV or Parquet); ValueError for a file that is not one.

    Example:
        >>> load_events("missing.csv")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        FileNotFoundError: ...
    """
    return read_history(path)
