"""The file format of a :class:`~multiopt_lab.training.history.History`.

A history file is a plain CSV file, one row per recorded value, in the
order they were recorded (``pandas.read_csv(path)`` gives ``history.frame``)::

    "run","step","group","metric","value"
    "adamw",1,"-","loss",2.302
    "adamw",10,"hidden","update_norm",0.0131

The run metadata and the per-parameter rows live beside it, in files named
after it (:mod:`multiopt_lab.training.history_sidecars`): ``run.runs.jsonl``
and ``run.parameters.csv`` for ``run.csv``. Strings are always quoted and
numbers never are. Files of the earlier form, with ``#run {json}`` and
``#end {json}`` comment lines among the rows, still load: a data line starts
with ``"`` and a metadata line with ``#``, whatever the names are. The files
are append-only, which is what lets another process follow them while they
are being written (:class:`CsvTail`).

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TextIO

from multiopt_lab.partition.labels import check_label_text

__all__ = ["COLUMNS", "CsvAppender", "CsvTail", "parse_lines", "read_file", "check_name",
           "csv_chunks", "format_lines"]

COLUMNS = ("run", "step", "group", "metric", "value")
HEADER = '"run","step","group","metric","value"'
_HEADER = HEADER
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


def csv_chunks(columns: dict[str, list], names: Sequence[str] = COLUMNS,
               header: str = HEADER, chunk_rows: int = 65536) -> Iterator[str]:
    """The whole CSV text of ``columns``: the header, then the rows in their order.

    Example:
        >>> columns = {"run": ["a"], "step": [1], "group": ["-"], "metric": ["loss"], "value": [0.5]}
        >>> print("".join(csv_chunks(columns)), end="")
        "run","step","group","metric","value"
        "a",1,"-","loss",0.5
    """
    yield header + "\n"
    count = len(columns[names[0]])
    for start in range(0, count, chunk_rows):
        parts = [columns[name][start:start + chunk_rows] for name in names]
        yield format_lines(zip(*(p.tolist() if hasattr(p, "tolist") else p for p in parts)))


def check_name(text: Any, what: str) -> str:
    """``text`` if a history file can store it as a run, group or metric name; else an error.

    A name follows the character rule of every label
    (:func:`multiopt_lab.partition.labels.check_label_text`): a string that
    is one line of printable text, without line breaks (each row is one
    line: the file could not be read back), other control characters or
    lone surrogates (UTF-8 cannot write them).

    Example:
        >>> check_name("adamw", "group label")
        'adamw'
    """
    return check_label_text(text, what)


#: What a bad line is reported with: (line number, 1-based; what is wrong).
BadLine = tuple[int, str]


def parse_lines(lines: Iterable[str | bytes], first_line: int = 1,
                bad: Callable[[int, str], None] | None = None) -> Iterator[tuple[str, Any]]:
    """Turn complete lines of a history file into events.

    Yields ``("row", (run, step, group, metric, value))``,
    ``("run", (name, metadata))`` or ``("end", name)``; the header, blank
    lines and other ``#`` comments yield nothing.

    Args:
        lines: The lines (str, or UTF-8 bytes), with or without their newline.
        first_line (int, optional): The line number of the first one. Default: ``1``.
        bad (Callable, optional): Called as ``bad(line_number, problem)`` for
            a line that is not a valid row or metadata line, which is then
            skipped. Default: ``None`` (raise).

    Raises:
        ValueError: A line is neither a row nor a metadata line (without ``bad``),
            naming the line number.

    Example:
        >>> list(parse_lines(['"a",1,"-","loss",0.5', 'oops'], bad=lambda n, why: print(n, why)))
        2 expected a quoted CSV row or a '#' metadata line, found 'oops'
        [('row', ('a', 1, '-', 'loss', 0.5))]
    """
    rows: list[tuple[int, str | bytes]] = []  # consecutive data lines: one csv pass (fast)
    for number, line in enumerate(lines, first_line):
        if line[:1] in ('"', b'"'):
            rows.append((number, line))
            continue
        yield from _parse_rows(rows, bad)
        rows = []
        yield from _parse_one(number, line, bad)
    yield from _parse_rows(rows, bad)


def _parse_rows(rows: list[tuple[int, str | bytes]], bad) -> Iterator[tuple[str, Any]]:
    """Data lines in one csv pass; line by line (to name the bad ones) if that fails."""
    if not rows:
        return
    parsed = None
    try:
        texts = [(line.decode("utf-8") if isinstance(line, bytes) else line).rstrip("\r\n")
                 for _, line in rows]
        fields = list(csv.reader(texts, quoting=csv.QUOTE_NONNUMERIC, strict=True))
        if len(fields) == len(rows):  # an open quote would have swallowed the next line
            parsed = [_checked_row(f) for f in fields]
    except (csv.Error, ValueError):  # UnicodeDecodeError is a ValueError
        parsed = None
    if parsed is not None:
        yield from [("row", row) for row in parsed]
        return
    for number, line in rows:
        yield from _parse_one(number, line, bad)


def _parse_one(number: int, line: str | bytes, bad) -> Iterator[tuple[str, Any]]:
    """One line's event (none for a blank line); a bad line raises, or goes to ``bad``."""
    try:
        event = _parse_line(line)
    except ValueError as err:
        if bad is None:
            raise ValueError(f"line {number} of the history file: {err}") from None
        bad(number, str(err))
        return
    if event is not None:
        yield event


def _parse_line(line: str | bytes) -> tuple[str, Any] | None:
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"not UTF-8 text (byte {line[err.start]:#04x} at column "
                             f"{err.start + 1})") from None
    stripped = line.rstrip("\r\n")
    if not stripped or stripped == _HEADER:
        return None
    if stripped.startswith('"'):
        return "row", _parse_row(stripped)
    if stripped.startswith(_RUN_TAG):
        record = _json_record(stripped[len(_RUN_TAG):], "#run")
        metadata = record.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ValueError(f"#run line: expected its metadata to be a JSON object, found "
                             f"{type(metadata).__name__}")
        return "run", (record["run"], metadata)
    if stripped.startswith(_END_TAG):
        return "end", _json_record(stripped[len(_END_TAG):], "#end")["run"]
    if stripped.startswith("#"):
        return None
    raise ValueError(f"expected a quoted CSV row or a '#' metadata line, found {stripped[:80]!r}")


def _parse_row(text: str) -> Row:
    try:
        rows = list(csv.reader([text], quoting=csv.QUOTE_NONNUMERIC, strict=True))
    except (csv.Error, ValueError) as err:
        raise ValueError(f"not a valid row ({err}): {text[:80]!r}") from None
    return _checked_row(rows[0] if len(rows) == 1 else None)


def _checked_row(fields: list | None) -> Row:
    if fields is None or len(fields) != 5:
        raise ValueError(f"expected 5 fields (run, step, group, metric, value), found "
                         f"{fields!r:.120}")
    run, step, group, metric, value = fields
    if type(run) is not str or type(group) is not str or type(metric) is not str:
        raise ValueError(f"expected quoted run, group and metric names, found {fields!r:.120}")
    if type(step) is not float or not step.is_integer():
        raise ValueError(f"expected a whole step number, found {step!r}")
    if type(value) is not float:
        raise ValueError(f"expected a number as the value, found {value!r:.40}")
    return run, int(step), group, metric, value


def _json_record(text: str, tag: str) -> dict:
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"{tag} line: not valid JSON ({err})") from None
    if not isinstance(record, dict) or not isinstance(record.get("run"), str):
        raise ValueError(f"{tag} line: expected a JSON object with a string 'run', found "
                         f"{text[:80]!r}")
    return record


class CsvAppender:
    """Appends to a history file (or one beside it) and flushes after every write.

    Args:
        path (str | os.PathLike): The file; created with its header if it is
            missing or empty, appended to otherwise.
        header (str | None, optional): The first line of a new file (None:
            none). Default: the history file's.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "h.csv")
        >>> out = CsvAppender(path); out.write_rows([("a", 1, "-", "loss", 1.0)]); out.close()
        >>> open(path).read().splitlines()[1]
        '"a",1,"-","loss",1.0'
    """

    def __init__(self, path: str | os.PathLike, header: str | None = HEADER) -> None:
        self.path = os.fspath(path)
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        self._file: TextIO | None = open(self.path, "a", encoding="utf-8", newline="")
        if new and header is not None:
            self._write(header + "\n")

    def _write(self, text: str) -> None:
        if self._file is None:
            raise ValueError(f"the history file {self.path!r} was closed; call History.stream_to() again")
        self._file.write(text)
        self._file.flush()

    def write_text(self, text: str) -> None:
        """Append lines already formatted (:func:`csv_chunks`)."""
        self._write(text)

    def write_rows(self, rows: Iterable[tuple]) -> None:
        """Append data rows."""
        self._write(format_lines(rows))

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None


class CsvTail:
    """Reads what was appended to a history file since the last read.

    Only complete lines are consumed: a line the writer is still writing is
    kept for the next call. A line that is not a valid row or metadata line
    is skipped and counted (:attr:`bad_lines`), never the lines around it.
    If the file is replaced (another file at that path, as
    :meth:`History.save` does) or rewritten from its start, even by a longer
    file, reading restarts at its beginning and :attr:`restarted` is set.

    Args:
        path (str | os.PathLike): The file; it may not exist yet.
        parse (Callable, optional): Turns complete lines into events, as
            :func:`parse_lines` does (its signature). Default: :func:`parse_lines`.

    Attributes:
        bad_lines (int): Lines skipped since reading (re)started.
        last_bad (list[tuple[int, str]]): The last few skipped lines: (line
            number, what is wrong).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "h.csv")
        >>> tail = CsvTail(path); tail.read_events()
        []
    """

    #: Bytes before the read offset compared on every read: a file rewritten
    #: in place from its start differs there.
    _SIGNATURE = 64
    _KEEP_BAD = 20

    def __init__(self, path: str | os.PathLike, parse: Callable = None) -> None:
        self.path = os.fspath(path)
        self.parse = parse_lines if parse is None else parse
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

    def read_events(self) -> list[tuple[str, Any]]:
        """Events (see :func:`parse_lines`) from the lines appended since last time."""
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

    def _replaced(self, file, info: os.stat_result) -> bool:
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


def read_file(path: str | os.PathLike) -> list[tuple[str, Any]]:
    """All events of the main CSV file of a history (its sidecars are read elsewhere)."""
    path = os.fspath(path)
    try:
        try:
            with open(path, encoding="utf-8", newline="") as file:
                return list(parse_lines(file))
        except UnicodeDecodeError:  # read again as bytes, to name the line
            with open(path, "rb") as file:
                return list(parse_lines(file))
    except ValueError as err:
        raise ValueError(f"{path} is not a history file: {err}") from None
