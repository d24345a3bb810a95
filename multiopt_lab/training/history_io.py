"""The file format of a :class:`~multiopt_lab.training.history.History`.

A history file is a CSV file that any tool can read, with one row per
recorded value and the run metadata on comment lines::

    "run","step","group","metric","value"
    #run {"run": "adamw", "metadata": {"device": "Device(cpu, 0)", ...}}
    "adamw",1,"-","loss",2.302
    "adamw",10,"hidden","update_norm",0.0131
    #end {"run": "adamw"}

Strings are always quoted and numbers never are, so a data line starts with
``"`` and a metadata line with ``#``: the two cannot be confused whatever the
run or group names are. ``pandas.read_csv(path, comment="#")`` reads the
rows. The file is append-only, which is what lets another process follow it
while it is being written (:class:`CsvTail`).

Example:
    >>> import io
    >>> lines = list(parse_lines(['"a",1,"-","loss",0.5']))
    >>> lines
    [('row', ('a', 1, '-', 'loss', 0.5))]
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

__all__ = ["COLUMNS", "CsvAppender", "CsvTail", "parse_lines", "read_file"]

COLUMNS = ("run", "step", "group", "metric", "value")
_HEADER = '"run","step","group","metric","value"'
_RUN_TAG = "#run "
_END_TAG = "#end "

Row = tuple[str, int, str, str, float]


def _format_row(row: Row) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerow(row)
    return buffer.getvalue()


def format_lines(rows: Iterable[Row]) -> str:
    """CSV text for ``rows`` (one line each, newline-terminated)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue()


def format_run(run: str, metadata: dict[str, Any]) -> str:
    """The metadata line that opens ``run``."""
    return _RUN_TAG + json.dumps({"run": run, "metadata": metadata}, default=str) + "\n"


def format_end(run: str) -> str:
    """The line that marks ``run`` as finished."""
    return _END_TAG + json.dumps({"run": run}) + "\n"


def parse_lines(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """Turn complete lines of a history file into events.

    Yields ``("row", (run, step, group, metric, value))``,
    ``("run", (name, metadata))`` or ``("end", name)``; the header and blank
    lines yield nothing.

    Raises:
        ValueError: A line is neither a row nor a metadata line.
    """
    data_lines: list[str] = []

    def flush() -> Iterator[tuple[str, Any]]:
        reader = csv.reader(data_lines, quoting=csv.QUOTE_NONNUMERIC)
        for fields in reader:
            if len(fields) != 5:
                raise ValueError(f"expected 5 fields (run, step, group, metric, value), found {fields!r}")
            run, step, group, metric, value = fields
            yield "row", (str(run), int(step), str(group), str(metric), float(value))
        data_lines.clear()

    for line in lines:
        stripped = line.rstrip("\r\n")
        if not stripped or stripped == _HEADER:
            continue
        if stripped.startswith('"'):
            data_lines.append(stripped)
            continue
        yield from flush()
        if stripped.startswith(_RUN_TAG):
            record = json.loads(stripped[len(_RUN_TAG):])
            yield "run", (record["run"], record.get("metadata") or {})
        elif stripped.startswith(_END_TAG):
            yield "end", json.loads(stripped[len(_END_TAG):])["run"]
        elif not stripped.startswith("#"):
            raise ValueError(
                f"expected a quoted CSV row or a '#' metadata line in a history file, found {stripped[:80]!r}"
            )
    yield from flush()


class CsvAppender:
    """Appends to a history file and flushes after every write.

    Args:
        path (str | os.PathLike): The file; created with its header if it is
            missing or empty, appended to otherwise.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "h.csv")
        >>> out = CsvAppender(path); out.write_rows([("a", 1, "-", "loss", 1.0)]); out.close()
        >>> open(path).read().splitlines()[1]
        '"a",1,"-","loss",1.0'
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        self._file: TextIO | None = open(self.path, "a", encoding="utf-8", newline="")
        if new:
            self._write(_HEADER + "\n")

    def _write(self, text: str) -> None:
        if self._file is None:
            raise ValueError(f"the history file {self.path!r} was closed; call History.stream_to() again")
        self._file.write(text)
        self._file.flush()

    def write_rows(self, rows: Iterable[Row]) -> None:
        """Append data rows."""
        self._write(format_lines(rows))

    def write_run(self, run: str, metadata: dict[str, Any]) -> None:
        """Append the metadata line of a new run."""
        self._write(format_run(run, metadata))

    def write_end(self, run: str) -> None:
        """Append the end marker of ``run``."""
        self._write(format_end(run))

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None


class CsvTail:
    """Reads what was appended to a history file since the last read.

    Only complete lines are consumed: a line the writer is still writing is
    kept for the next call. If the file shrinks (rewritten from scratch),
    reading restarts at its beginning and :attr:`restarted` is set.

    Args:
        path (str | os.PathLike): The file; it may not exist yet.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "h.csv")
        >>> tail = CsvTail(path); tail.read_events()
        []
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._offset = 0
        self._pending = b""
        self.restarted = False

    def read_events(self) -> list[tuple[str, Any]]:
        """Events (see :func:`parse_lines`) from the lines appended since last time."""
        self.restarted = False
        try:
            size = os.path.getsize(self.path)
        except FileNotFoundError:
            return []
        if size < self._offset:
            self._offset, self._pending, self.restarted = 0, b"", True
        if size == self._offset:
            return []
        with open(self.path, "rb") as file:
            file.seek(self._offset)
            chunk = file.read(size - self._offset)
        self._offset += len(chunk)
        data = self._pending + chunk
        complete, newline, self._pending = data.rpartition(b"\n")
        if not newline:
            return []
        return list(parse_lines(complete.decode("utf-8").split("\n")))


def read_file(path: str | os.PathLike) -> list[tuple[str, Any]]:
    """All events of a history file: CSV, or Parquet written by :func:`write_parquet`."""
    path = os.fspath(path)
    if path.endswith(".parquet"):
        from multiopt_lab.training.history_parquet import read_parquet

        return read_parquet(path)
    with open(path, encoding="utf-8", newline="") as file:
        return list(parse_lines(file))
