"""The runs file beside a History's CSV: each run's metadata, and which runs ended.

``run.runs.jsonl`` beside ``run.csv`` holds one JSON object a line:
``{"event": "run", "run": name, "metadata": {...}}`` when a run starts and
``{"event": "end", "run": name}`` when it ends. It is append-only while a
History streams to it, so another process can follow it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from multiopt_lab._src.io.history_data import Event

__all__ = ["format_run_event", "format_end_event", "run_event_lines", "parse_run_lines",
           "read_runs_file"]


def format_run_event(run: str, metadata: dict[str, Any]) -> str:
    """The line of the runs file that starts ``run``.
    """
    return json.dumps({"event": "run", "run": run, "metadata": metadata}, default=str) + "\n"


def format_end_event(run: str) -> str:
    """The line of the runs file that ends ``run``."""
    return json.dumps({"event": "end", "run": run}) + "\n"


def run_event_lines(runs: dict[str, dict], ended: Iterable[str]) -> str:
    """The whole runs file: every run's start, then the ends (empty when no run).
    """
    ended = set(ended)
    return "".join([format_run_event(run, info) for run, info in runs.items()]
                   + [format_end_event(run) for run in runs if run in ended])


def parse_run_lines(lines: Iterable[str | bytes], first_line: int = 1,
                    bad: Callable[[int, str], None] | None = None) -> Iterator[Event]:
    """Events ``("run", (name, metadata))`` and ``("end", name)`` of runs-file lines.

    A line that is not such an event raises a ValueError naming it, or goes
    to ``bad(line_number, problem)`` and is skipped (as
    :func:`~multiopt_lab._src.io.history_csv.parse_lines` does).
    """
    for number, line in enumerate(lines, first_line):
        try:
            event = _run_event(line)
        except ValueError as error:
            if bad is None:
                raise ValueError(f"line {number} of the runs file: {error}") from None
            bad(number, str(error))
            continue
        if event is not None:
            yield event


def _run_event(line: str | bytes) -> Event | None:
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"not UTF-8 text (byte at column {err.start + 1})") from None
    text = line.strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"not valid JSON ({err})") from None
    if not isinstance(record, dict) or not isinstance(record.get("run"), str) \
            or record.get("event") not in ("run", "end"):
        raise ValueError(f'expected {{"event": "run" or "end", "run": name, ...}}, found {text[:80]!r}')
    if record["event"] == "end":
        return "end", record["run"]
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError(f"expected the metadata of run {record['run']!r} to be a JSON object, "
                         f"found {type(metadata).__name__}")
    return "run", (record["run"], metadata)


def read_runs_file(path: str) -> list[Event]:
    """The events of a runs file; [] when there is none; ValueError naming a bad line."""
    try:
        with open(path, "rb") as file:
            return list(parse_run_lines(file))
    except FileNotFoundError:
        return []
    except ValueError as error:
        raise ValueError(f"{path} is not a history runs file: {error}") from None
