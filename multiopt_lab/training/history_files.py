"""Saving a History to a file, and following a file another process writes.

The file format is described in :mod:`multiopt_lab.training.history_io`. The run
metadata travels inside the file: on ``#run`` comment lines in CSV, in the
schema metadata (key ``multiopt_lab``) in Parquet. :func:`save_history`
writes through :func:`~multiopt_lab.io.atomic.write_atomically`;
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
from multiopt_lab.training.history_parquet import write_parquet
from multiopt_lab.training.history_records import HistoryRecords

__all__ = ["save_history", "HistoryFollower", "SkippedLines"]


def save_history(records: HistoryRecords, path: str | os.PathLike) -> None:
    """Write every run of ``records`` to ``path``: Parquet for ``.parquet``, CSV otherwise.

    Example:
        >>> import os, tempfile
        >>> records = HistoryRecords(); records.runs["a"] = {}
        >>> records.append([("a", 1, "-", "loss", 0.5)])
        >>> path = os.path.join(tempfile.mkdtemp(), "h.csv"); save_history(records, path)
        >>> open(path).read().splitlines()[2]
        '"a",1,"-","loss",0.5'
    """
    path = os.fspath(path)
    columns, runs, ended = records.snapshot()
    if path.endswith(".parquet"):
        write_atomically(path, lambda file: write_parquet(file, columns, runs, ended))
        return

    def write_csv(file) -> None:
        for chunk in history_io.csv_chunks(columns, runs, ended):
            file.write(chunk.encode("utf-8"))

    write_atomically(path, write_csv)


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
    """Reads what another process appends to a history file into ``records``.

    Bad lines are skipped and counted (:attr:`skipped`), with a warning that
    names them; the good rows around them are kept. A replaced file is read
    again from its start. :meth:`watch` refreshes on a daemon thread that
    outlives any failure of one refresh (kept in :attr:`last_error`).

    Args:
        path (str | os.PathLike): The file (it may not exist yet).
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
        self.tail = history_io.CsvTail(path)
        self.last_error: BaseException | None = None
        self._warned = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def skipped(self) -> SkippedLines:
        """The lines skipped so far (since the file was last read from its start)."""
        return SkippedLines(self.tail.bad_lines, tuple(self.tail.last_bad))

    def refresh(self) -> int:
        """Read the rows appended since the last refresh; returns how many."""
        with self.records.lock:
            events = self.tail.read_events()
            if self.tail.restarted:
                self.records.reset()
                self._warned = 0
            added = self.records.apply_events(events)
        if self.tail.bad_lines > self._warned:
            new = self.tail.bad_lines - self._warned
            self._warned = self.tail.bad_lines
            warnings.warn(f"History.follow({self.path!r}): skipped {new} line"
                          f"{'s' * (new != 1)} that {'are' if new != 1 else 'is'} not history "
                          f"rows ({self.skipped}); the rows around them are kept",
                          RuntimeWarning, stacklevel=2)
        if events or self.tail.restarted:
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
    return history_io.read_file(path)
