"""The files of one saved History, written whole (atomically) and read back as events.

A History saved to ``run.csv`` is up to three files:

* ``run.csv``: its rows, a plain CSV (:mod:`~multiopt_lab._src.io.history_csv`);
* ``run.runs.jsonl``: its runs' metadata and ends (:mod:`~multiopt_lab._src.io.history_runs_file`);
* ``run.parameters.csv``: its per-parameter rows, when it has any
  (:mod:`~multiopt_lab._src.io.history_parameter_csv`).

Saved to ``run.parquet``, it is the Parquet file, the metadata in its schema,
and ``run.parameters.parquet`` (:mod:`~multiopt_lab._src.io.history_parquet`).
Each file is written through :func:`~multiopt_lab._src.io.atomic.write_atomically`;
a file beside it with nothing to hold is not written, and one left there by
an earlier save is removed (it would be read with the new file).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO

from multiopt_lab._src.io.atomic import write_atomically
from multiopt_lab._src.io.history_csv import csv_chunks, read_rows_file
from multiopt_lab._src.io.history_data import Event, HistoryData
from multiopt_lab._src.io.history_parameter_csv import parameter_csv_chunks, read_parameter_csv
from multiopt_lab._src.io.history_parquet import (read_parameters_parquet, read_parquet,
                                             write_parameters_parquet, write_parquet)
from multiopt_lab._src.io.history_runs_file import read_runs_file, run_event_lines

__all__ = ["sidecar_paths", "save_history", "read_history"]


def sidecar_paths(path: str | os.PathLike) -> tuple[str, str]:
    """``(runs file, per-parameter file)`` beside the history file ``path``.
    """
    path = os.fspath(path)
    stem, suffix = os.path.splitext(path)
    return stem + ".runs.jsonl", stem + ".parameters" + (".parquet" if suffix == ".parquet" else ".csv")


def _write_or_remove(path: str, write: Callable[[BinaryIO], object] | None) -> None:
    if write is not None:
        write_atomically(path, write)
    elif os.path.exists(path):
        os.remove(path)


def _writing(chunks: Callable) -> Callable[[BinaryIO], None]:
    def write(file: BinaryIO) -> None:
        for chunk in chunks():
            file.write(chunk.encode("utf-8"))
    return write


def save_history(path: str | os.PathLike, data: HistoryData) -> None:
    """Write ``data`` to ``path``: Parquet for ``.parquet``, a plain CSV otherwise, and the
    files beside it; each whole or not at all (the main file last).
    """
    path = os.fspath(path)
    runs_path, parameters_path = sidecar_paths(path)
    parameters = data.parameters
    if path.endswith(".parquet"):
        _write_or_remove(parameters_path, (lambda file: write_parameters_parquet(file, parameters))
                         if len(parameters) else None)
        write_atomically(path, lambda file: write_parquet(file, data.columns, data.runs, data.ended))
        return
    text = run_event_lines(data.runs, data.ended)
    _write_or_remove(parameters_path, _writing(lambda: parameter_csv_chunks(parameters))
                     if len(parameters) else None)
    _write_or_remove(runs_path, (lambda file: file.write(text.encode("utf-8"))) if text else None)
    write_atomically(path, _writing(lambda: csv_chunks(data.columns)))


def read_history(path: str | os.PathLike) -> list[Event]:
    """Every event of a saved history: its runs, its rows and its per-parameter rows.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: A file is not a history file (the line or row is named).
    """
    path = os.fspath(path)
    runs_path, parameters_path = sidecar_paths(path)
    if path.endswith(".parquet"):
        events = read_parquet(path)
        parameters = read_parameters_parquet(parameters_path)
    else:
        rows = read_rows_file(path)  # first: a missing file says so
        events = read_runs_file(runs_path) + rows
        parameters = read_parameter_csv(parameters_path)
    if parameters is not None and len(parameters):
        events.append(("parameters", parameters))
    return events
