"""Saving, loading, streaming and following a History file.

The file format is described in :mod:`multiopt_lab.training.history_io`. The run
metadata travels inside the file: on ``#run`` comment lines in CSV, in the
schema metadata (key ``multiopt_lab``) in Parquet.

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
from typing import Any

from multiopt_lab.training import history_io
from multiopt_lab.training.history_parquet import write_parquet

__all__ = ["HistoryFilesMixin"]


class HistoryFilesMixin:
    """File methods of :class:`~multiopt_lab.training.history.History`."""

    def save(self, path: str | os.PathLike) -> None:
        """Write every run, with its metadata, to ``path``.

        ``.parquet`` writes Parquet (needs pyarrow); any other suffix writes
        the CSV format. The file is written to a temporary name and renamed,
        so a failure never leaves a half-written file in place.

        Example:
            >>> import os, tempfile
            >>> from multiopt_lab.training.history import History
            >>> h = History(); h.record(1, loss=1.0)
            >>> path = os.path.join(tempfile.mkdtemp(), "h.csv"); h.save(path)
            >>> History.load(path).last("loss")
            1.0
        """
        path = os.fspath(path)
        temporary = f"{path}.tmp-{os.getpid()}"
        with self._lock:
            columns = {name: list(values) for name, values in self._columns.items()}
            runs = {name: dict(info) for name, info in self._runs.items()}
            ended = set(self._ended)
        try:
            if path.endswith(".parquet"):
                write_parquet(temporary, columns, runs, ended)
            else:
                self._write_csv(temporary, columns, runs, ended)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    @staticmethod
    def _write_csv(path: str, columns: dict, runs: dict, ended: set) -> None:
        rows = list(zip(*(columns[name] for name in history_io.COLUMNS)))
        out = history_io.CsvAppender(path)
        try:
            for run, info in runs.items():
                out.write_run(run, info)
                out.write_rows(row for row in rows if row[0] == run)
                if run in ended:
                    out.write_end(run)
        finally:
            out.close()

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read a history saved with :meth:`save` (or streamed with :meth:`stream_to`).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: The file is not a history file.
        """
        history = cls()
        history._apply_events(history_io.read_file(path))
        return history

    @classmethod
    def follow(cls, path: str | os.PathLike):
        """A history that reads ``path`` as another process writes it.

        Call :meth:`refresh` to read what was appended (only new bytes are
        read), or :meth:`watch` to refresh in a background thread. The file
        may not exist yet.

        Example:
            >>> import os, tempfile
            >>> from multiopt_lab.training.history import History
            >>> follower = History.follow(os.path.join(tempfile.mkdtemp(), "later.csv"))
            >>> follower.refresh()
            0
        """
        history = cls()
        history._tail = history_io.CsvTail(path)
        history.refresh()
        return history

    def refresh(self) -> int:
        """Read the rows appended to the followed file; returns how many.

        Raises:
            ValueError: This history does not follow a file.
        """
        if self._tail is None:
            raise ValueError("refresh() needs a history made by History.follow(path)")
        with self._lock:
            events = self._tail.read_events()
            if self._tail.restarted:
                self._reset()
            added = self._apply_events(events, notify=False)
        if events or self._tail.restarted:
            self._notify("refresh")
        if any(kind == "end" for kind, _ in events):
            self._notify("end_run")
        return added

    def watch(self, interval: float = 0.5) -> None:
        """Call :meth:`refresh` every ``interval`` seconds in a daemon thread.

        Subscribers are then notified from that thread. Stop with
        :meth:`stop_watching`.
        """
        if self._tail is None:
            raise ValueError("watch() needs a history made by History.follow(path)")
        if self._watcher is not None and self._watcher.is_alive():
            return
        self._stop_watching.clear()

        def loop() -> None:
            while not self._stop_watching.wait(interval):
                self.refresh()

        self._watcher = threading.Thread(target=loop, name="multiopt-lab-history-watch", daemon=True)
        self._watcher.start()

    def stop_watching(self) -> None:
        """Stop the thread :meth:`watch` started (no-op if none)."""
        self._stop_watching.set()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None

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
        with self._lock:
            self.close()
            self._write_csv(path, self._columns, self._runs, self._ended)
            self._writer = history_io.CsvAppender(path)

    def close(self) -> None:
        """Stop streaming to a file (the file stays)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _reset(self) -> None:
        for values in self._columns.values():
            values.clear()
        self._runs.clear()
        self._ended.clear()
        self._last.clear()
        self._current = None
        self._frame = None

    def _apply_events(self, events: list[tuple[str, Any]], notify: bool = True) -> int:
        rows = []
        with self._lock:
            for kind, payload in events:
                if kind == "row":
                    if payload[0] not in self._runs:
                        self._runs[payload[0]] = {}
                    rows.append(payload)
                    continue
                self._append(rows)
                rows = []
                if kind == "run":
                    name, metadata = payload
                    self._runs[name] = dict(metadata)
                    self._current = name
                elif kind == "end":
                    self._ended.add(payload)
            self._append(rows)
            if self._current is None and self._runs:
                self._current = next(reversed(self._runs))
        added = sum(1 for kind, _ in events if kind == "row")
        if notify and events:
            self._notify("refresh")
        return added
