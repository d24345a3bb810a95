"""The files beside a History's CSV: its runs' metadata and its per-parameter rows.

For ``run.csv`` (the rows ``pandas.read_csv`` reads into ``history.frame``):

* ``run.runs.jsonl``: one JSON object a line, ``{"event": "run", "run":
  name, "metadata": {...}}`` when a run starts and ``{"event": "end", "run":
  name}`` when it ends;
* ``run.parameters.csv``: the per-parameter rows (``history.parameters``),
  a plain CSV with the columns run, step, path, group, metric, value.

A Parquet history ``run.parquet`` keeps the metadata in its schema and its
per-parameter rows in ``run.parameters.parquet``. A sidecar is written only
when it has something to hold. All are append-only while a History streams
to them, so another process can follow them.

Example:
    >>> sidecar_paths("out/run.csv")
    ('out/run.runs.jsonl', 'out/run.parameters.csv')
    >>> list(parse_run_lines(['{"event": "end", "run": "a"}']))
    [('end', 'a')]
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from multiopt_lab.training.history_parameters import PARAMETER_COLUMNS

__all__ = ["sidecar_paths", "PARAMETER_HEADER", "format_run_event", "format_end_event",
           "run_event_lines", "parse_run_lines", "parse_parameter_lines", "read_parameter_csv",
           "read_runs_file", "parameters_frame"]

#: The header line of a per-parameter CSV file.
PARAMETER_HEADER = ",".join(f'"{name}"' for name in PARAMETER_COLUMNS)


def sidecar_paths(path: str | os.PathLike) -> tuple[str, str]:
    """``(runs file, per-parameter file)`` beside the history file ``path``.

    Example:
        >>> sidecar_paths("h.parquet")
        ('h.runs.jsonl', 'h.parameters.parquet')
    """
    path = os.fspath(path)
    stem, suffix = os.path.splitext(path)
    return stem + ".runs.jsonl", stem + ".parameters" + (".parquet" if suffix == ".parquet" else ".csv")


def format_run_event(run: str, metadata: dict[str, Any]) -> str:
    """The line of the runs file that starts ``run``.

    Example:
        >>> format_run_event("a", {"lr": 0.1})
        '{"event": "run", "run": "a", "metadata": {"lr": 0.1}}\\n'
    """
    return json.dumps({"event": "run", "run": run, "metadata": metadata}, default=str) + "\n"


def format_end_event(run: str) -> str:
    """The line of the runs file that ends ``run``."""
    return json.dumps({"event": "end", "run": run}) + "\n"


def run_event_lines(runs: dict[str, dict], ended: Iterable[str]) -> str:
    """The whole runs file: every run's start, then the ends (empty when no run).

    Example:
        >>> print(run_event_lines({"a": {}}, {"a"}), end="")
        {"event": "run", "run": "a", "metadata": {}}
        {"event": "end", "run": "a"}
    """
    ended = set(ended)
    return "".join([format_run_event(run, info) for run, info in runs.items()]
                   + [format_end_event(run) for run in runs if run in ended])


def parse_run_lines(lines: Iterable[str | bytes], first_line: int = 1,
                    bad: Callable[[int, str], None] | None = None) -> Iterator[tuple[str, Any]]:
    """Events ``("run", (name, metadata))`` and ``("end", name)`` of runs-file lines.

    A line that is not such an event raises a ValueError naming it, or goes
    to ``bad(line_number, problem)`` and is skipped (as
    :func:`~multiopt_lab.training.history_io.parse_lines` does).

    Example:
        >>> list(parse_run_lines(['{"event": "run", "run": "a", "metadata": {}}', "", "x"],
        ...                      bad=lambda n, why: print(n, why)))
        3 not valid JSON (Expecting value: line 1 column 1 (char 0))
        [('run', ('a', {}))]
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


def _run_event(line: str | bytes) -> tuple[str, Any] | None:
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


def read_runs_file(path: str) -> list[tuple[str, Any]]:
    """The events of a runs file; [] when there is none; ValueError naming a bad line."""
    try:
        with open(path, "rb") as file:
            return list(parse_run_lines(file))
    except FileNotFoundError:
        return []
    except ValueError as error:
        raise ValueError(f"{path} is not a history runs file: {error}") from None


# -- per-parameter rows ---------------------------------------------------------------
def parameters_frame(rows: list[tuple]) -> pd.DataFrame:
    """Checked rows ``(run, step, path, group, metric, value)`` as a frame."""
    columns = list(zip(*rows)) if rows else [[] for _ in PARAMETER_COLUMNS]
    return pd.DataFrame({
        "run": list(columns[0]), "step": np.array(columns[1], dtype=np.int64),
        "path": list(columns[2]), "group": list(columns[3]), "metric": list(columns[4]),
        "value": np.array(columns[5], dtype=np.float64)}, columns=list(PARAMETER_COLUMNS))


def _checked_parameter_row(fields: list | None) -> tuple:
    if fields is None or len(fields) != 6:
        raise ValueError(f"expected 6 fields (run, step, path, group, metric, value), found "
                         f"{fields!r:.120}")
    run, step, path, group, metric, value = fields
    if not all(type(text) is str for text in (run, path, group, metric)):
        raise ValueError(f"expected quoted run, path, group and metric names, found {fields!r:.120}")
    if type(step) is not float or not step.is_integer():
        raise ValueError(f"expected a whole step number, found {step!r}")
    if type(value) is not float:
        raise ValueError(f"expected a number as the value, found {value!r:.40}")
    return run, int(step), path, group, metric, value


def _parameter_row(line: str | bytes) -> tuple | None:
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"not UTF-8 text (byte at column {err.start + 1})") from None
    text = line.rstrip("\r\n")
    if not text or text == PARAMETER_HEADER:
        return None
    try:
        fields = list(csv.reader([text], quoting=csv.QUOTE_NONNUMERIC, strict=True))
    except (csv.Error, ValueError) as err:
        raise ValueError(f"not a valid row ({err}): {text[:80]!r}") from None
    return _checked_parameter_row(fields[0] if len(fields) == 1 else None)


def parse_parameter_lines(lines: Iterable[str | bytes], first_line: int = 1,
                          bad: Callable[[int, str], None] | None = None) -> Iterator[tuple[str, Any]]:
    """One event ``("parameters", frame)`` for the rows among ``lines`` (none without rows).

    Example:
        >>> events = list(parse_parameter_lines(['"a",1,"w","sgd","update_norm",0.5']))
        >>> events[0][0], events[0][1].value.tolist()
        ('parameters', [0.5])
    """
    lines = list(lines)
    try:  # one csv pass over the whole batch (fast); line by line to name a bad one
        texts = [(line.decode("utf-8") if isinstance(line, bytes) else line).rstrip("\r\n")
                 for line in lines]
        kept = [text for text in texts if text and text != PARAMETER_HEADER]
        fields = list(csv.reader(kept, quoting=csv.QUOTE_NONNUMERIC, strict=True))
        if len(fields) != len(kept):  # an open quote swallowed the next line
            raise ValueError("a quote spans lines")
        rows = [_checked_parameter_row(f) for f in fields]
    except (csv.Error, ValueError):  # UnicodeDecodeError is a ValueError
        rows = []
        for number, line in enumerate(lines, first_line):
            try:
                row = _parameter_row(line)
            except ValueError as error:
                if bad is None:
                    raise ValueError(f"line {number} of the per-parameter file: {error}") from None
                bad(number, str(error))
                continue
            if row is not None:
                rows.append(row)
    if rows:
        yield "parameters", parameters_frame(rows)


_STRINGS = ("run", "path", "group", "metric")


def read_parameter_csv(path: str) -> pd.DataFrame | None:
    """The rows of a per-parameter CSV file (None when there is none); ValueError naming a bad line.

    Read by pandas' C parser (a million rows in a second or two), checked,
    and read line by line only to name what is wrong with a bad file.
    """
    if not os.path.exists(path):
        return None
    try:
        frame = pd.read_csv(path, dtype={name: "category" for name in _STRINGS} | {"step": "int64"},
                            keep_default_na=False, na_values={"value": ["nan", "NaN", "-nan"]},
                            engine="c")
        good = (list(frame.columns) == list(PARAMETER_COLUMNS)
                and frame["value"].dtype == np.float64)
    except (ValueError, TypeError, pd.errors.ParserError, UnicodeDecodeError):
        good = False
    if good:
        return frame
    try:
        with open(path, "rb") as file:
            events = list(parse_parameter_lines(file))
    except ValueError as error:
        raise ValueError(f"{path} is not a per-parameter history file: {error}") from None
    if not events:
        header = open(path, "rb").readline().decode("utf-8", "replace").strip()
        if header and header != PARAMETER_HEADER:
            raise ValueError(f"{path} is not a per-parameter history file: expected the header "
                             f"{PARAMETER_HEADER}, found {header[:80]!r}")
        return parameters_frame([])
    return events[0][1]


def format_parameter_rows(rows: Iterable[tuple]) -> str:
    """CSV text of per-parameter rows (one line each)."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
