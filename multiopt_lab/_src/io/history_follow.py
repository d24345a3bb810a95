"""Follow the files of a History that another process writes (a training script, rank 0).

:class:`HistoryFollower` reads what was appended to the three files of a
history (the rows, the runs file, the per-parameter file; any may not exist
yet) since its last read, as events (:mod:`~multiopt_lab._src.io.history_data`),
and hands them to the function that applies them. A line that is not a
history line is skipped, counted and warned about; the good lines around it
are kept. When any of the files is replaced (an atomic save renamed over
it) or rewritten from its start, all are read again from their start and
the update says so, so the reader starts afresh. :meth:`~HistoryFollower.watch`
refreshes on a daemon thread that outlives any failure of one refresh.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from multiopt_lab._src.io.file_tail import FileTail
from multiopt_lab._src.io.history_csv import parse_lines
from multiopt_lab._src.io.history_data import Event, count_rows
from multiopt_lab._src.io.history_files import sidecar_paths
from multiopt_lab._src.io.history_parameter_csv import parse_parameter_lines
from multiopt_lab._src.io.history_runs_file import parse_run_lines

__all__ = ["HistoryFollower", "FollowedUpdate", "SkippedLines"]


@dataclass(frozen=True)
class SkippedLines:
    """Lines of a followed file that were not history lines, and were skipped.

    Attributes:
        count (int): How many since the file was (re)read from its start.
        last (tuple[tuple[int, str], ...]): The last few: (line number, what is wrong).
    """

    count: int = 0
    last: tuple[tuple[int, str], ...] = ()

    def __str__(self) -> str:
        if not self.count:
            return "no line skipped"
        shown = "; ".join(f"line {number}: {problem}" for number, problem in self.last[-3:])
        return f"{self.count} line{'s' * (self.count != 1)} skipped; {shown}"


@dataclass(frozen=True)
class FollowedUpdate:
    """What one :meth:`HistoryFollower.refresh` read.

    Attributes:
        events (list): The events, in the order to apply them.
        restarted (bool): A file was replaced: the events are the whole
            history again, to apply to an empty one.
    """

    events: list[Event]
    restarted: bool

    @property
    def rows(self) -> int:
        """How many rows (group and per-parameter) the events hold."""
        return count_rows(self.events)

    @property
    def changed(self) -> bool:
        """Whether the reader's history changed (events read, or a restart)."""
        return bool(self.events) or self.restarted

    @property
    def ended(self) -> bool:
        """Whether a run ended among the events."""
        return any(kind == "end" for kind, _ in self.events)


class HistoryFollower:
    """Reads what another process appends to a history's files, as events.

    Args:
        path (str | os.PathLike): The history file (it may not exist yet);
            the files beside it are followed too.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        runs_path, parameters_path = sidecar_paths(self.path)
        self.tail = FileTail(self.path, parse_lines)
        self.runs_tail = FileTail(runs_path, parse_run_lines)
        self.parameters_tail = FileTail(parameters_path, parse_parameter_lines)
        self._errors_seen: set[str] = set()
        # One refresh at a time, from reading to applying: the watch thread and
        # a caller's refresh must not apply two reads out of order.
        self._lock = threading.RLock()
        self._warned = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def _tails(self) -> tuple[FileTail, FileTail, FileTail]:
        return self.tail, self.runs_tail, self.parameters_tail

    def _read(self) -> tuple[list[Event], bool]:
        # The runs file before the rows (a run's start is written before its
        # rows, its end after them) and again after (a run started while the
        # rows were read): every row finds its run's metadata.
        events: list[Event] = []
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

    def refresh(self, apply: Callable[[list[Event], bool], object]) -> FollowedUpdate:
        """Read what was appended since the last refresh and call ``apply(events, restarted)``.

        ``restarted`` is true when a file was replaced: ``events`` then hold
        the whole history again, for a reader that starts afresh. Warns
        (RuntimeWarning) when lines were skipped, naming them.
        """
        with self._lock:
            events, restarted = self._read()
            if restarted:  # one file replaced: read all of them again
                for tail in self._tails:
                    tail.restart()
                events, _ = self._read()
                self._warned = 0
            apply(events, restarted)
            bad_lines = sum(t.bad_lines for t in self._tails)
            new = bad_lines - self._warned
            self._warned = max(bad_lines, self._warned)
        if new > 0:
            warnings.warn(f"History.follow({self.path!r}): skipped {new} line"
                          f"{'s' * (new != 1)} that {'are' if new != 1 else 'is'} not history "
                          f"rows ({self.skipped}); the rows around them are kept",
                          RuntimeWarning, stacklevel=2)
        return FollowedUpdate(events, restarted)

    def watch(self, refresh: Callable[[], object], interval: float) -> None:
        """Call ``refresh()`` every ``interval`` seconds on a daemon thread (one at a time).

        A call that raises does not stop the thread; each distinct error is
        reported once as a ``RuntimeWarning``.
        """
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(refresh, interval),
                                        name="multiopt-lab-history-watch", daemon=True)
        self._thread.start()

    def _loop(self, refresh: Callable[[], object], interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                refresh()
            except Exception as error:  # noqa: BLE001 - a monitor must not stop for one bad read
                said = f"{type(error).__name__}: {error}"
                if said not in self._errors_seen:  # each distinct error once, not every interval
                    self._errors_seen.add(said)
                    warnings.warn(f"following {self.path}: {said}; following goes on",
                                  RuntimeWarning, stacklevel=1)

    def stop(self) -> None:
        """Stop the thread :meth:`watch` started (no-op if none)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
