"""Append text to a file and flush it at once, so another process reads it as it comes.
"""

from __future__ import annotations

import os
from typing import TextIO

__all__ = ["LineAppender"]


class LineAppender:
    """Appends to a UTF-8 text file and flushes after every write.

    Args:
        path (str | os.PathLike): The file; created (with ``header``) when it
            is missing or empty, appended to otherwise.
        header (str | None, optional): The first line of a new file, without
            its newline (None: none). Default: ``None``.
    """

    def __init__(self, path: str | os.PathLike, header: str | None = None) -> None:
        self.path = os.fspath(path)
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        self._file: TextIO | None = open(self.path, "a", encoding="utf-8", newline="")
        if new and header is not None:
            self.write(header + "\n")

    def write(self, text: str) -> None:
        """Append ``text`` (whole lines, already formatted) and flush.

        Raises:
            ValueError: The appender was closed.
        """
        if self._file is None:
            raise ValueError(f"{self.path!r} was closed for appending; open it again "
                             "(History.stream_to() for a History's files)")
        self._file.write(text)
        self._file.flush()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
