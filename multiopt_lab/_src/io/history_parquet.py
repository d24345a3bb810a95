"""Parquet files of a History (optional: needs pyarrow).

The rows are the five columns of the CSV format; the run metadata and the
finished runs are JSON in the schema metadata under the key ``multiopt_lab``.
Per-parameter rows go to a second file beside it (``run.parameters.parquet``),
their names dictionary-encoded (``pandas.read_parquet`` gives categoricals).
"""

from __future__ import annotations

import json
from typing import Any

from multiopt_lab._src.io.history_data import COLUMNS, PARAMETER_COLUMNS, Event

__all__ = ["write_parquet", "read_parquet", "write_parameters_parquet", "read_parameters_parquet"]


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


def write_parquet(file: Any, columns: dict[str, list], runs: dict[str, dict], ended: set[str]) -> None:
    """Write the rows as Parquet to ``file`` (a path or a binary file), the run metadata in
    the schema's metadata."""
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
    pa.parquet.write_table(table, file)


def read_parquet(path: str) -> list[Event]:
    """The events of a Parquet history file; ValueError saying what is wrong with a bad one.
    """
    pa = _require_pyarrow()
    try:
        table = pa.parquet.read_table(path)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError) as err:
        raise ValueError(f"{path} is not a Parquet history file: {err}") from None
    missing = [name for name in COLUMNS if name not in table.column_names]
    if missing:
        raise ValueError(f"{path} is not a history file: expected the columns {list(COLUMNS)}, "
                         f"found {table.column_names[:10]} (missing {missing})")
    runs, ended = _metadata(path, (table.schema.metadata or {}).get(b"multiopt_lab"))
    events: list[Event] = [("run", (name, data)) for name, data in runs.items()]
    try:
        columns = table.select(list(COLUMNS)).to_pydict()
    except (pa.ArrowException, ValueError, TypeError) as err:
        raise ValueError(f"{path}: cannot read its columns: {err}") from None
    for number, row in enumerate(zip(*(columns[name] for name in COLUMNS)), 1):
        events.append(("row", _row(path, number, row)))
    events += [("end", name) for name in ended]
    return events


def _metadata(path: str, raw: bytes | None) -> tuple[dict[str, dict], list[str]]:
    if raw is None:
        return {}, []
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ValueError(f"{path}: its 'multiopt_lab' metadata is not valid JSON ({err})") from None
    runs = meta.get("runs", {}) if isinstance(meta, dict) else None
    ended = meta.get("ended", []) if isinstance(meta, dict) else None
    if (not isinstance(runs, dict) or not all(isinstance(v, dict) for v in runs.values())
            or not isinstance(ended, list) or not all(isinstance(e, str) for e in ended)):
        raise ValueError(f"{path}: expected its 'multiopt_lab' metadata to be "
                         '{"runs": {name: {...}}, "ended": [names]}, found '
                         f"{raw[:80].decode('utf-8', 'replace')!r}")
    return runs, ended


def _row(path: str, number: int, row: tuple) -> tuple[str, int, str, str, float]:
    run, step, group, metric, value = row
    if not all(isinstance(text, str) for text in (run, group, metric)):
        raise ValueError(f"{path}, row {number}: expected string run, group and metric, "
                         f"found {row!r:.120}")
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not float(step).is_integer():
        raise ValueError(f"{path}, row {number}: expected a whole step number, found {step!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{path}, row {number}: expected a number as the value, found {value!r}")
    return run, int(step), group, metric, float(value)


_PARAMETER_STRINGS = ("run", "path", "group", "metric")


def write_parameters_parquet(file: Any, frame: Any) -> None:
    """Write per-parameter rows (``History.parameters``) as Parquet, names dictionary-encoded."""
    import pandas as pd

    pa = _require_pyarrow()
    arrays = {}
    for name in PARAMETER_COLUMNS:
        column = frame[name]
        if name in _PARAMETER_STRINGS:
            if not isinstance(column.dtype, pd.CategoricalDtype):
                column = column.astype("category")
            arrays[name] = pa.DictionaryArray.from_arrays(
                pa.array(column.cat.codes.to_numpy()),
                pa.array(list(column.cat.categories), pa.string()))
        else:
            arrays[name] = pa.array(column.to_numpy(), pa.int64() if name == "step" else pa.float64())
    pa.parquet.write_table(pa.table(arrays), file)


def read_parameters_parquet(path: str) -> Any:
    """The per-parameter rows of a Parquet file (None when there is none); ValueError for a bad one.
    """
    import os

    if not os.path.exists(path):
        return None
    pa = _require_pyarrow()
    try:
        table = pa.parquet.read_table(path)
    except (pa.ArrowException, OSError, ValueError, TypeError) as err:
        raise ValueError(f"{path} is not a Parquet per-parameter file: {err}") from None
    missing = [name for name in PARAMETER_COLUMNS if name not in table.column_names]
    if missing:
        raise ValueError(f"{path} is not a per-parameter history file: expected the columns "
                         f"{list(PARAMETER_COLUMNS)}, found {table.column_names[:10]} (missing {missing})")
    try:
        frame = table.select(list(PARAMETER_COLUMNS)).to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as err:
        raise ValueError(f"{path}: cannot read its columns: {err}") from None
    import numpy as np
    import pandas as pd

    for name in _PARAMETER_STRINGS:
        column = frame[name]
        values = column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) else column
        if column.isna().any() or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{path}: expected strings in the column {name!r}, found "
                             f"{column.dtype} {list(values[:3])!r}")
    for name, kind in (("step", "i"), ("value", "f")):
        if frame[name].dtype.kind not in (kind, "i") or (name == "step" and frame[name].dtype.kind != "i"):
            raise ValueError(f"{path}: expected {'whole numbers' if kind == 'i' else 'numbers'} "
                             f"in the column {name!r}, found {frame[name].dtype}")
    frame["value"] = frame["value"].astype(np.float64)
    return frame
