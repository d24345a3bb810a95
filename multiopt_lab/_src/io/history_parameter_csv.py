"""The per-parameter file beside a History's CSV: ``history.parameters`` as a plain CSV.

``run.parameters.csv`` beside ``run.csv`` has the columns run, step, path,
group, metric, value (:data:`~multiopt_lab._src.io.history_data.PARAMETER_COLUMNS`),
strings quoted and numbers not, and ``pandas.read_csv`` reads it (with
``dtype="category"`` for the string columns, to keep it small). It is
written only when per-parameter rows were recorded, and is append-only
while a History streams to it, so another process can follow it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from multiopt_lab._src.io.history_csv import csv_chunks, format_lines
from multiopt_lab._src.io.history_data import PARAMETER_COLUMNS, Event

__all__ = ["PARAMETER_HEADER", "parameters_frame", "parse_parameter_lines", "read_parameter_csv",
           "parameter_csv_chunks", "format_parameter_block"]

#: The header line of a per-parameter CSV file.
PARAMETER_HEADER = ",".join(f'"{name}"' for name in PARAMETER_COLUMNS)


def parameters_frame(rows: list[tuple]) -> pd.DataFrame:
    """Checked rows ``(run, step, path, group, metric, value)`` as a frame."""
    columns: list[Sequence[Any]] = list(zip(*rows)) if rows else [[] for _ in PARAMETER_COLUMNS]
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
                          bad: Callable[[int, str], None] | None = None) -> Iterator[Event]:
    """One event ``("parameters", frame)`` for the rows among ``lines`` (none without rows).
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


def parameter_csv_chunks(frame: pd.DataFrame, header: bool = True) -> Iterator[str]:
    """The CSV text of per-parameter rows (``History.parameters``), in chunks.
    """
    columns = {name: (frame[name].astype(object).to_numpy() if name in _STRINGS
                      else frame[name].to_numpy()) for name in PARAMETER_COLUMNS}
    return csv_chunks(columns, PARAMETER_COLUMNS, PARAMETER_HEADER if header else None)


def format_parameter_block(run: str, step: int, paths: Sequence[str], groups: Sequence[str],
                           metrics: Sequence[str], values: Any) -> str:
    """CSV text of one recorded step: ``values[i][j]`` is metric ``metrics[j]`` of ``paths[i]``."""
    rows = values.tolist() if hasattr(values, "tolist") else values
    return format_lines((run, step, path, group, metric, value)
                        for path, group, row in zip(paths, groups, rows)
                        for metric, value in zip(metrics, row))
