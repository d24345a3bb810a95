"""Read what another process appended to a line file since the last read (``tail -F``).

Only complete lines are consumed: a line the writer is still writing is kept
for the next read. A line the parser refuses is skipped and counted, never
the lines around it. A file replaced at that path (another file renamed over
it, as an atomic save does) or rewritten from its start, even by a longer
file, is read again from its beginning, and :attr:`FileTail.restarted` says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

__all__ = ["FileTail", "BadLine", "LineParser"]

#: A skipped line: (line number, 1-based; what is wrong).
BadLine = tuple[int, str]
#: ``parse(lines, first_line_number, bad)``: the events of complete lines (bytes,
#: without their newline); a bad line goes to ``bad(number, problem)``.
LineParser = Callable[[list[bytes], int, Callable[[int, str], None]], Iterable[Any]]


class FileTail:
    """Reads the lines appended to ``path`` since the last :meth:`read_events`.

    Args:
        path (str | os.PathLike): The file; it may not exist yet.
        parse (LineParser): Turns complete lines into events, skipping a bad
            one through the callback it is given.

    Attributes:
        restarted (bool): The last read found the file replaced or rewritten
            and read it from its start.
        bad_lines (int): Lines skipped since reading (re)started.
        last_bad (list[BadLine]): The last few skipped lines.
    """

    #: Bytes before the read offset compared on every read: a file rewritten
    #: in place from its start differs there.
    _SIGNATURE = 64
    _KEEP_BAD = 20

    def __init__(self, path: str | os.PathLike, parse: LineParser) -> None:
        self.path = os.fspath(path)
        self.parse = parse
        self.restarted = False
        self._start()

    def _start(self) -> None:
        self._offset = 0
        self._pending = b""
        self._identity: tuple[int, int] | None = None
        self._signature = b""
        self._lines = 0
        self.bad_lines = 0
        self.last_bad: list[BadLine] = []

    def read_events(self) -> list[Any]:
        """The events of the complete lines appended since the last read."""
        self.restarted = False
        try:
            with open(self.path, "rb") as file:
                info = os.fstat(file.fileno())
                if self._replaced(file, info):
                    self._start()
                    self.restarted = True
                self._identity = (info.st_dev, info.st_ino)
                if info.st_size == self._offset:
                    return []
                file.seek(self._offset)
                chunk = file.read(info.st_size - self._offset)
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        self._signature = (self._signature + chunk)[-self._SIGNATURE:]
        data = self._pending + chunk
        complete, newline, self._pending = data.rpartition(b"\n")
        if not newline:
            return []
        lines = complete.split(b"\n")
        first = self._lines + 1
        self._lines += len(lines)
        return list(self.parse(lines, first, self._skip))

    def restart(self) -> None:
        """Read the file from its start at the next :meth:`read_events`."""
        self._start()

    def _replaced(self, file: BinaryIO, info: os.stat_result) -> bool:
        if self._identity is None:
            return False
        if self._identity != (info.st_dev, info.st_ino) or info.st_size < self._offset:
            return True
        if not self._signature:
            return False
        file.seek(self._offset - len(self._signature))
        return file.read(len(self._signature)) != self._signature

    def _skip(self, number: int, problem: str) -> None:
        self.bad_lines += 1
        self.last_bad = (self.last_bad + [(number, problem)])[-self._KEEP_BAD:]

