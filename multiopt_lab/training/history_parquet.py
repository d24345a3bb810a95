"""Parquet files of a History (optional: needs pyarrow).

The rows are the five columns of the CSV format; the run metadata and the
finished runs are JSON in the schema metadata under the key ``multiopt_lab``.

Example:
    >>> from multiopt_lab.training.history import History
    >>> History().save("run.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from typing import Any

from multiopt_lab.training.history_io import COLUMNS

__all__ = ["write_parquet", "read_parquet"]


def _require_pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "saving or loading a history as Parquet needs pyarrow, which is not installed; "
            "install it with `pip install pyarrow` or use a .csv path"
        ) from error
    return pyarrow


def write_parquet(path: str, columns: dict[str, list], runs: dict[str, dict], ended: set[str]) -> None:
    """Write the rows as Parquet, the run metadata in the schema's metadata."""
    pa = _require_pyarrow()
    table = pa.table(
        {
            "run": pa.array(columns["run"], pa.string()),
            "step": pa.array(columns["step"], pa.int64()),
            "group": pa.array(columns["group"], pa.string()),
            "metric": pa.array(columns["metric"], pa.string()),
            "value": pa.array(columns["value"], pa.float64()),
        }
    )
    meta = json.dumps({"runs": runs, "ended": sorted(ended)}, default=str)
    table = table.replace_schema_metadata({b"multiopt_lab": meta.encode("utf-8")})
    pa.parquet.write_table(table, path)


def read_parquet(path: str) -> list[tuple[str, Any]]:
    pa = _require_pyarrow()
    table = pa.parquet.read_table(path)
    raw = (table.schema.metadata or {}).get(b"multiopt_lab", b'{"runs": {}, "ended": []}')
    meta = json.loads(raw.decode("utf-8"))
    events: list[tuple[str, Any]] = [("run", (name, data)) for name, data in meta["runs"].items()]
    columns = table.to_pydict()
    events += [
        ("row", (r, int(s), g, m, float(v)))
        for r, s, g, m, v in zip(*(columns[name] for name in COLUMNS))
    ]
    events += [("end", name) for name in meta["ended"]]
    return events
