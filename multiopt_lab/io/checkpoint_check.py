"""Compare a checkpoint's groups with an optimizer's, and build what to load.

Example:
    >>> describe_paths(["a", "b", "c"], limit=2)
    "'a', 'b' and 1 more"
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_unflatten

from multiopt_lab.optimizer.repartition import existing_entry
from multiopt_lab.partition.table import ParameterTable

__all__ = ["expected_groups", "plan_new_state", "describe_paths", "template", "same_layout",
           "read_checkpoint", "checksum", "metadata_json", "MAX_LIST_INDEX"]

#: Largest list index a checkpoint key may hold (``layers.N``): MLX's
#: ``tree_unflatten`` builds N empty entries, so a corrupt key must not ask for billions.
MAX_LIST_INDEX = 2**20


def checksum(arrays: dict, metadata: dict) -> str:
    """CRC-32 (hex) over the metadata (but ``crc32``) and every array's key, shape, dtype and
    bytes, in key order; stored as metadata ``crc32``.

    Example:
        >>> checksum({"a": mx.zeros((2,))}, {"format": "x"})
        '47f15b2e'
    """
    described = [(k, v) for k, v in sorted(metadata.items()) if k != "crc32"]
    described += [(k, tuple(a.shape), str(a.dtype)) for k, a in sorted(arrays.items())]
    crc = zlib.crc32(repr(described).encode("utf-8"))
    for key in sorted(arrays):
        crc = zlib.crc32(np.asarray(mx.view(arrays[key].reshape(-1), mx.uint8)), crc)
    return f"{crc:08x}"


def read_checkpoint(file: str) -> tuple[dict, dict, Any]:
    """``(arrays, metadata, state tree)`` of a safetensors checkpoint, or a ValueError saying
    what is wrong with the file (missing, truncated, corrupted, not a checkpoint).

    Example:
        >>> read_checkpoint("missing.safetensors")  # doctest: +SKIP
        ValueError: cannot read the checkpoint missing.safetensors: ...
    """
    try:
        arrays, metadata = mx.load(file, format="safetensors", return_metadata=True)
    except (RuntimeError, ValueError, OSError) as err:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"cannot read the checkpoint {file}: it is missing, truncated or "
                         f"corrupted ({type(err).__name__}: {err})") from None
    stored = metadata.get("crc32")
    found = None if stored is None else checksum(arrays, metadata)
    if stored is not None and stored != found:
        raise ValueError(f"the checkpoint {file} is corrupted: its contents do not match the "
                         f"checksum written with them (crc32 {stored}, found {found}); restore "
                         "it from a copy")
    for key in arrays:
        parts = key.split(".")
        if len(parts) > 64 or any(p.isdigit() and int(p) > MAX_LIST_INDEX for p in parts):
            raise ValueError(f"the checkpoint {file} is corrupted or not an optimizer state: "
                             f"key {key[:80]!r} is nested too deep or indexes past {MAX_LIST_INDEX}")
    return arrays, metadata, tree_unflatten(list(arrays.items())) if arrays else {}


def metadata_json(metadata: dict, key: str, file: str) -> Any:
    """``json.loads(metadata[key])`` (None when absent); ValueError naming the key when broken."""
    if key not in metadata:
        return None
    try:
        return json.loads(metadata[key])
    except (ValueError, RecursionError) as err:
        raise ValueError(f"the checkpoint {file} is corrupted: its metadata {key!r} is not valid "
                         f"JSON ({err})") from None


def describe_paths(paths: list[str], limit: int = 8) -> str:
    """Paths quoted and joined, the tail counted rather than listed."""
    shown = ", ".join(repr(p) for p in paths[:limit])
    return shown if len(paths) <= limit else f"{shown} and {len(paths) - limit} more"


def expected_groups(optimizer: Any, parameters: Any) -> list[dict[str, tuple]] | None:
    """Per group, ``path -> (shape, dtype)`` the optimizer expects; None when unknown.

    From ``parameters`` when given (routed with the optimizer's rules), else
    from the structure the optimizer last stepped on.
    """
    n = len(optimizer.optimizers)
    groups: list[dict[str, tuple]] = [{} for _ in range(n)]
    if parameters is not None:
        table = ParameterTable.from_tree(parameters)
        winners = optimizer.assign(table).winners.tolist()
        for path, array, g in zip(table.paths, table.arrays, winners):
            groups[g][path] = (tuple(array.shape), array.dtype)
        return groups
    plan = getattr(optimizer, "_plan", None)
    if plan is None:
        return None
    for path, shape, dtype, g in zip(plan.paths, plan.shapes, plan.dtypes, plan.group_index):
        groups[g][path] = (tuple(shape), dtype)
    return groups


def template(optimizer: Any, shape: tuple, dtype: Any) -> dict:
    """A fresh per-parameter state for ``shape``/``dtype`` (lazy zeros, never computed)."""
    state: dict = {}
    optimizer.init_single(mx.zeros(shape, dtype), state)  # lazy: never computed
    return state


def same_layout(entry: Any, fresh: dict) -> bool:
    """True when ``entry`` has the keys and shapes of ``fresh`` (a :func:`template`)."""
    if not isinstance(entry, dict) or set(entry) != set(fresh):
        return False
    return all(getattr(entry[k], "shape", None) == fresh[k].shape for k in fresh)


def plan_new_state(optimizer: Any, subs: list[dict], stored_paths: list[list[str]],
                   expected: list[dict[str, tuple]] | None, strict: bool,
                   name: str) -> tuple[list[dict], dict[str, tuple]]:
    """The sub-states to install and what happened to each path; raises when strict fails."""
    if expected is None:
        every = tuple(p for paths in stored_paths for p in paths)
        return subs, {"loaded": every, "initialised": (), "unused": ()}
    problems, loaded, initialised, unused, new_subs = [], [], [], [], []
    for g, (sub_optimizer, sub, stored) in enumerate(zip(optimizer.optimizers, subs, stored_paths)):
        want = expected[g]
        label = optimizer.labels[g]
        missing = [p for p in want if p not in set(stored)]
        extra = [p for p in stored if p not in want]
        good, wrong = {}, []
        for path in (p for p in want if p not in missing):
            fresh = template(sub_optimizer, *want[path])
            entry = existing_entry(sub, path)
            if same_layout(entry, fresh):
                good[path] = entry
            else:
                wrong.append(path)
        if missing:
            problems.append(f"group {label!r}: no state in the file for {describe_paths(missing)}")
        if extra:
            problems.append(f"group {label!r}: the file has state for {describe_paths(extra)}, "
                            "which this optimizer routes elsewhere or does not have")
        if wrong:
            problems.append(f"group {label!r}: different state shapes for {describe_paths(wrong)}")
        loaded += list(good)
        initialised += missing + wrong
        unused += extra
        new_subs.append(_rebuilt(sub_optimizer, sub, want, good))
    if problems and strict:
        raise ValueError(f"the checkpoint {name} does not match this optimizer's groups:\n  "
                         + "\n  ".join(problems)
                         + "\nload it into an optimizer with the same rules and model, or pass "
                           "strict=False to load what matches and initialise the rest")
    if not problems:
        return subs, {"loaded": tuple(loaded), "initialised": (), "unused": ()}
    return new_subs, {"loaded": tuple(loaded), "initialised": tuple(initialised),
                      "unused": tuple(unused)}


def _rebuilt(optimizer: Any, sub: dict, want: dict[str, tuple], good: dict[str, dict]) -> dict:
    entries = []
    for path, (shape, dtype) in want.items():
        entries.append((path, good[path] if path in good else template(optimizer, shape, dtype)))
    tree = tree_unflatten(entries) if entries else {}
    top = {k: v for k, v in sub.items() if isinstance(v, mx.array)}
    top.update(tree)
    return top
