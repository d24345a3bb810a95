"""Stream a History to its files: every record appended and flushed as it happens.

The files are those of :mod:`~multiopt_lab._src.io.history_files` (the rows, the
runs file, the per-parameter file), appended to while the History records,
so that another process can follow them
(:mod:`~multiopt_lab._src.io.history_follow`) and a crash loses at most the line
being written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from multiopt_lab._src.io.history_csv import HEADER, csv_chunks, format_lines
from multiopt_lab._src.io.history_data import HistoryData, Row
from multiopt_lab._src.io.history_files import sidecar_paths
from multiopt_lab._src.io.history_parameter_csv import (PARAMETER_HEADER, format_parameter_block,
                                                   parameter_csv_chunks)
from multiopt_lab._src.io.history_runs_file import format_end_event, format_run_event, run_event_lines
from multiopt_lab._src.io.line_appender import LineAppender

__all__ = ["HistoryStream"]


class HistoryStream:
    """Appends what a History records to its files, flushing after every write.

    The rows go to ``path``, run starts and ends to its runs file, and
    per-parameter rows to its per-parameter file (created at the first).

    Args:
        path (str | os.PathLike): The history file: missing or empty (files
            beside it are then replaced: they belong to no history).
        data (HistoryData, optional): What is recorded already, written
            first so the files are complete. Default: ``None`` (nothing).

    Raises:
        FileExistsError: ``path`` exists and is not empty (streaming never
            mixes two histories).
    """

    def __init__(self, path: str | os.PathLike, data: HistoryData | None = None) -> None:
        path = os.fspath(path)
        if os.path.exists(path) and os.path.getsize(path) > 0:
            raise FileExistsError(
                f"{path!r} already holds data; stream to a new file, or load it with History.load()"
            )
        self.path = path
        self.runs_path, self.parameters_path = sidecar_paths(path)
        for stale in (self.runs_path, self.parameters_path):
            if os.path.exists(stale):
                os.remove(stale)
        self._rows = LineAppender(path, header=HEADER)
        self._runs = LineAppender(self.runs_path)
        self._parameters: LineAppender | None = None
        if data is not None:
            try:
                self._write_data(data)
            except BaseException:
                self.close()
                raise

    def _write_data(self, data: HistoryData) -> None:
        if data.runs:
            self._runs.write(run_event_lines(data.runs, data.ended))
        for chunk in csv_chunks(data.columns, header=None):
            self._rows.write(chunk)
        if len(data.parameters):
            for chunk in parameter_csv_chunks(data.parameters, header=False):
                self._parameters_file().write(chunk)

    def _parameters_file(self) -> LineAppender:
        if self._parameters is None:
            self._parameters = LineAppender(self.parameters_path, header=PARAMETER_HEADER)
        return self._parameters

    def write_rows(self, rows: Sequence[Row]) -> None:
        """Append group rows ``(run, step, group, metric, value)``."""
        if rows:
            self._rows.write(format_lines(rows))

    def write_parameter_block(self, run: str, step: int, paths: Sequence[str],
                              groups: Sequence[str], metrics: Sequence[str], values: Any) -> None:
        """Append one recorded step's per-parameter rows: ``values[i][j]`` is metric
        ``metrics[j]`` of ``paths[i]``."""
        text = format_parameter_block(run, step, paths, groups, metrics, values)
        if text:
            self._parameters_file().write(text)

    def write_run(self, run: str, metadata: dict[str, Any]) -> None:
        """Append the start of ``run``."""
        self._runs.write(format_run_event(run, metadata))

    def write_end(self, run: str) -> None:
        """Append the end of ``run``."""
        self._runs.write(format_end_event(run))

    def close(self) -> None:
        """Close every file (idempotent)."""
        for appender in (self._rows, self._runs, self._parameters):
            if appender is not None:
                appender.close()
