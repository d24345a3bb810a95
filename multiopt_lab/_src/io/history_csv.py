"""The main file of a History: a plain CSV, one row per recorded value.

Rows come in the order they were recorded, and ``pandas.read_csv(path)``
reads the file into exactly ``history.frame``::

    "run","step","group","metric","value"
    "adamw",1,"-","loss",2.302
    "adamw",10,"hidden","update_norm",0.0131

Strings are always quoted and numbers never are. The run metadata and the
per-parameter rows live beside it (:mod:`~multiopt_lab._src.io.history_files`
names the files: ``run.runs.jsonl``, ``run.parameters.csv``). Files of the
earlier form, with ``#run {json}`` and ``#end {json}`` comment lines among
the rows, still load: a data line starts with ``"`` and a metadata line with
``#``, whatever the names are. The file is append-only while a History
streams to it, which is what lets another process follow it
(:mod:`~multiopt_lab._src.io.history_follow`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from multiopt_lab._src.io.history_data import COLUMNS, Event, Row

__all__ = ["HEADER", "format_lines", "csv_chunks", "parse_lines", "read_rows_file"]

#: The first line of a history's main file.
HEADER = ",".join(f'"{name}"' for name in COLUMNS)
_RUN_TAG = "#run "
_END_TAG = "#end "


def format_lines(rows: Iterable[Sequence[Any]]) -> str:
    """CSV text for ``rows`` (one line each, newline-terminated; strings quoted, numbers not)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue()


def csv_chunks(columns: dict[str, Any], names: Sequence[str] = COLUMNS,
               header: str | None = HEADER, chunk_rows: int = 65536) -> Iterator[str]:
    """The whole CSV text of ``columns`` (lists or arrays): the header, then the rows in order.

    Args:
        columns (dict): One list or array per name of ``names``.
        names (Sequence[str], optional): The columns, in file order. Default: :data:`COLUMNS`.
        header (str | None, optional): The first line (None: none, to append
            to a file that has it). Default: :data:`HEADER`.
        chunk_rows (int, optional): Rows per chunk. Default: ``65536``.
    """
    if header is not None:
        yield header + "\n"
    count = len(columns[names[0]])
    for start in range(0, count, chunk_rows):
        parts = [columns[name][start:start + chunk_rows] for name in names]
        yield format_lines(zip(*(p.tolist() if hasattr(p, "tolist") else p for p in parts)))


def parse_lines(lines: Iterable[str | bytes], first_line: int = 1,
                bad: Callable[[int, str], None] | None = None) -> Iterator[Event]:
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


def _parse_rows(rows: list[tuple[int, str | bytes]], bad) -> Iterator[Event]:
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


def _parse_one(number: int, line: str | bytes, bad) -> Iterator[Event]:
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


def _parse_line(line: str | bytes) -> Event | None:
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"not UTF-8 text (byte {line[err.start]:#04x} at column "
                             f"{err.start + 1})") from None
    stripped = line.rstrip("\r\n")
    if not stripped or stripped == HEADER:
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


def read_rows_file(path: str | os.PathLike) -> list[Event]:
    """All events of the main CSV file of a history (the files beside it are read elsewhere).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: A line is not a history line (its number is named).
    """
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
