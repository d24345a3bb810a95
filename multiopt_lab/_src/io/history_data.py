"""A History as plain data: what its files hold and what their readers give back.

The files of a :class:`~multiopt_lab.History` (modules
``history_*`` of this folder) know nothing of the class: a writer is handed
a :class:`HistoryData` (columns, runs, finished runs, per-parameter frame),
and a reader returns *events*, tuples the History applies in order:

* ``("row", (run, step, group, metric, value))``: one row of :data:`COLUMNS`;
* ``("run", (name, metadata))``: a run starts (later rows belong to it);
* ``("end", name)``: a run ended;
* ``("parameters", frame)``: per-parameter rows, a frame with the
  columns :data:`PARAMETER_COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["COLUMNS", "PARAMETER_COLUMNS", "Row", "Event", "HistoryData", "count_rows"]

#: The columns of ``History.frame`` and of a history's main file.
COLUMNS = ("run", "step", "group", "metric", "value")
#: The columns of ``History.parameters`` and of its per-parameter file.
PARAMETER_COLUMNS = ("run", "step", "path", "group", "metric", "value")

#: One row of :data:`COLUMNS`.
Row = tuple[str, int, str, str, float]
#: What a reader yields: ``(kind, payload)``, kinds ``row``, ``run``, ``end``, ``parameters``.
Event = tuple[str, Any]


def _no_parameters() -> pd.DataFrame:
    return pd.DataFrame({name: [] for name in PARAMETER_COLUMNS}).astype(
        {"step": "int64", "value": "float64"})


@dataclass(frozen=True)
class HistoryData:
    """Everything a History holds, as a writer of its files needs it.

    Attributes:
        columns (dict[str, list]): One list per column of :data:`COLUMNS`,
            rows in the order they were recorded.
        runs (dict[str, dict]): Run name -> metadata (JSON-friendly), oldest first.
        ended (set[str]): The runs marked finished.
        parameters (pandas.DataFrame): The per-parameter rows
            (:data:`PARAMETER_COLUMNS`; string columns may be categoricals).
    """

    columns: dict[str, list]
    runs: dict[str, dict[str, Any]]
    ended: set[str] = field(default_factory=set)
    parameters: pd.DataFrame = field(default_factory=_no_parameters)


def count_rows(events: Iterable[Event]) -> int:
    """How many rows (group rows and per-parameter rows) ``events`` hold."""
    return sum(1 if kind == "row" else len(payload) if kind == "parameters" else 0
               for kind, payload in events)
