"""Compare a checkpoint's groups with an optimizer's, and build what to load.

Example:
    >>> describe_paths(["a", "b", "c"], limit=2)
    "'a', 'b' and 1 more"
"""

from __future__ import annotations

import json
import mmap
import os
import zlib
from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from multiopt_lab.optimizer.repartition import existing_entry
from multiopt_lab.partition.table import ParameterTable

__all__ = ["expected_groups", "plan_new_state", "plan_single_state", "describe_paths",
           "template", "same_layout", "layout_problem", "top_level_problems", "read_checkpoint",
           "checksum", "file_checksum", "unflatten", "metadata_json", "MAX_LIST_INDEX"]

#: Largest list index a checkpoint key may hold (``layers.N``): MLX's
#: ``tree_unflatten`` builds N empty entries, so a corrupt key must not ask for billions.
MAX_LIST_INDEX = 2**20


#: Arrays are checksummed in pieces of about this many bytes, each evaluated at once.
_CHECKSUM_PIECE = 64 * 2**20
_CHECKSUM_ARRAYS = 4096


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
    # The CRC of concatenated bytes chains piece by piece, so many small arrays are
    # joined (one evaluation, one copy to numpy) instead of read back one by one.
    pieces, size = [], 0
    for key in sorted(arrays):
        array = arrays[key]
        pieces.append(mx.view(array.reshape(-1), mx.uint8))
        size += array.nbytes
        if size >= _CHECKSUM_PIECE or len(pieces) >= _CHECKSUM_ARRAYS:
            crc, pieces, size = _crc_of(pieces, crc), [], 0
    return f"{_crc_of(pieces, crc):08x}"


def file_checksum(file: str, arrays: dict, metadata: dict) -> str:
    """:func:`checksum` of a safetensors file, its bytes read from the file itself.

    The same value :func:`checksum` gives for the arrays loaded from it, without
    evaluating them one by one (seconds for 100,000 lazily loaded arrays).

    Raises:
        ValueError: The header names data outside the file.
    """
    keys = sorted(arrays)
    described = [(k, v) for k, v in sorted(metadata.items()) if k != "crc32"]
    described += [(k, tuple(arrays[k].shape), str(arrays[k].dtype)) for k in keys]
    crc = zlib.crc32(repr(described).encode("utf-8"))
    with open(file, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        header_size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(header_size)) if 8 + header_size <= size else None
        if not isinstance(header, dict):
            raise ValueError("its header is cut short")
        start = 8 + header_size
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else _Empty() as data:
            view = memoryview(data)
            try:
                for key in keys:
                    first, last = header[key]["data_offsets"]
                    if not 0 <= first <= last <= size - start:
                        raise ValueError(f"the data of {key!r} lies outside the file")
                    crc = zlib.crc32(view[start + first:start + last], crc)
            except (KeyError, TypeError) as err:
                raise ValueError(f"its header does not describe every array ({err})") from None
            finally:
                view.release()
    return f"{crc:08x}"


class _Empty:
    """Stands for the mmap of an empty file (mmap refuses length 0)."""

    def __enter__(self) -> bytes:
        return b""

    def __exit__(self, *exc) -> None:
        return None


def _crc_of(pieces: list, crc: int) -> int:
    if not pieces:
        return crc
    joined = pieces[0] if len(pieces) == 1 else mx.concatenate(pieces)
    return zlib.crc32(np.asarray(joined), crc)


def unflatten(items: list[tuple[str, Any]]) -> Any:
    """``mlx.utils.tree_unflatten`` for checkpoint keys, in one pass over them.

    Lists are made of keys that are all digits, gaps filled with ``{}`` as
    MLX does. MLX's recursive version costs seconds at 100,000 keys.

    Example:
        >>> unflatten([("layers.1.w", 1), ("step", 2)])
        {'layers': [{}, {'w': 1}], 'step': 2}
    """
    if len(items) == 1 and items[0][0] == "":
        return items[0][1]
    root: dict = {}
    for key, value in items:
        node = root
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    return _lists_of(root)


def _lists_of(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    for key, child in node.items():
        if isinstance(child, dict):
            node[key] = _lists_of(child)
    if node and all(key.isdigit() for key in node):
        indices = sorted((int(key), key) for key in node)
        items: list = [{} for _ in range(indices[-1][0] + 1)]
        for index, key in indices:
            items[index] = node[key]
        return items
    return node


def read_checkpoint(file: str) -> tuple[dict, dict, Any]:
    """``(arrays, metadata, state tree)`` of a safetensors checkpoint, or a ValueError saying
    what is wrong with the file (missing, truncated, corrupted, not a checkpoint).

    Example:
        >>> read_checkpoint("missing.safetensors")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: cannot read the checkpoint missing.safetensors: it is missing, truncated ...
    """
    try:
        arrays, metadata = mx.load(file, format="safetensors", return_metadata=True)
    except (RuntimeError, ValueError, OSError) as err:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"cannot read the checkpoint {file}: it is missing, truncated or "
                         f"corrupted ({type(err).__name__}: {err})") from None
    stored = metadata.get("crc32")
    try:
        found = None if stored is None else file_checksum(file, arrays, metadata)
    except (ValueError, OSError) as err:
        raise ValueError(f"the checkpoint {file} is corrupted: {err}") from None
    if stored is not None and stored != found:
        raise ValueError(f"the checkpoint {file} is corrupted: its contents do not match the "
                         f"checksum written with them (crc32 {stored}, found {found}); restore "
                         "it from a copy")
    for key in arrays:
        parts = key.split(".")
        if len(parts) > 64 or any(p.isdigit() and int(p) > MAX_LIST_INDEX for p in parts):
            raise ValueError(f"the checkpoint {file} is corrupted or not an optimizer state: "
                             f"key {key[:80]!r} is nested too deep or indexes past {MAX_LIST_INDEX}")
    return arrays, metadata, unflatten(list(arrays.items())) if arrays else {}


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
    """True when ``entry`` has the keys, shapes and dtypes of ``fresh`` (a :func:`template`)."""
    return layout_problem(entry, fresh) is None


def layout_problem(entry: Any, fresh: dict) -> tuple[str, str] | None:
    """What differs between a stored per-parameter state and ``fresh`` (a :func:`template`):
    ``(kind, detail)`` with kind ``"layouts"``, ``"shapes"`` or ``"dtypes"``; ``None`` when
    nothing does.

    Example:
        >>> fresh = {"v": mx.zeros((2, 2))}
        >>> layout_problem({"v": mx.zeros((2, 2), mx.complex64)}, fresh)
        ('dtypes', "'v' is complex64, expected float32")
    """
    if not isinstance(entry, dict) or set(entry) != set(fresh):
        found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        return "layouts", f"holds {found}, expected {sorted(fresh)}"
    for key, want in fresh.items():
        have = entry[key]
        if not isinstance(have, mx.array):
            return "layouts", f"{key!r} is a {type(have).__name__}, expected an array"
        if have.shape != want.shape:
            return "shapes", f"{key!r} has shape {tuple(have.shape)}, expected {tuple(want.shape)}"
        if have.dtype != want.dtype:
            return "dtypes", f"{key!r} is {_dtype(have.dtype)}, expected {_dtype(want.dtype)}"
    return None


def _dtype(dtype: Any) -> str:
    return str(dtype).rpartition(".")[2]


def top_level_problems(stored: dict, live: dict) -> dict[str, str]:
    """Optimizer-wide entries (``step``, ``learning_rate``...) of a stored sub-state that
    cannot replace the live optimizer's: key -> what is wrong.

    An entry the live state has must keep its shape and dtype; one it lacks
    must be a real scalar (a learning rate of shape (3, 1, 1) would broadcast
    every parameter to three copies; a complex one would make them complex).

    Example:
        >>> top_level_problems({"learning_rate": mx.zeros((3, 1, 1))},
        ...                    {"learning_rate": mx.array(0.1)})
        {'learning_rate': 'shape (3, 1, 1) and dtype float32, expected shape () and float32'}
    """
    problems = {}
    for key, value in stored.items():
        if not isinstance(value, mx.array):
            continue
        want = live.get(key)
        if isinstance(want, mx.array):
            if value.shape == want.shape and value.dtype == want.dtype:
                continue
            expected = f"shape {tuple(want.shape)} and {_dtype(want.dtype)}"
        elif value.ndim == 0 and not mx.issubdtype(value.dtype, mx.complexfloating):
            continue
        else:
            expected = "a real scalar"
        problems[key] = (f"shape {tuple(value.shape)} and dtype {_dtype(value.dtype)}, "
                         f"expected {expected}")
    return problems


def plan_new_state(optimizer: Any, subs: list[dict], stored_paths: list[list[str]],
                   expected: list[dict[str, tuple]] | None, strict: bool,
                   name: str) -> tuple[list[dict], dict[str, tuple]]:
    """The sub-states to install and what happened to each path; raises when strict fails.

    Every check is against the optimizer as it is: its groups' paths (when
    known), each parameter's state keys, shapes and dtypes (what its
    optimizer's ``init_single`` makes), and the optimizer-wide entries it
    holds. Time is linear in the number of paths.
    """
    labels = getattr(optimizer, "labels", None) or [str(g) for g in range(len(subs))]
    plans = [_plan_group(o, f"group {label!r}", sub, stored, None if expected is None else want)
             for o, label, sub, stored, want in zip(optimizer.optimizers, labels, subs,
                                                    stored_paths, expected or [None] * len(subs))]
    return _decide(plans, subs, strict, name, "this optimizer's groups")


def plan_single_state(optimizer: Any, state: dict, parameters: Any, strict: bool,
                      name: str) -> tuple[dict, dict[str, tuple]]:
    """:func:`plan_new_state` for one MLX optimizer (not a multi-optimizer): its state
    against ``parameters`` (the trainable ones) and its live optimizer-wide entries.

    Example:
        >>> import mlx.optimizers as optim
        >>> sgd = optim.SGD(0.1, momentum=0.9)
        >>> state = {"step": mx.array(1, mx.uint64), "w": {"v": mx.zeros((2,), mx.complex64)}}
        >>> plan_single_state(sgd, state, {"w": mx.zeros((2,))}, False, "f")[1]["initialised"]
        ('w',)
    """
    want = {}
    if parameters is not None:
        flat = ParameterTable.from_tree(parameters)
        want = {p: (tuple(a.shape), a.dtype) for p, a in zip(flat.paths, flat.arrays)}
    stored = _per_parameter_paths(state)
    # A state saved before the first step holds no per-parameter entries: MLX
    # makes them at the next step, as for a fresh optimizer.
    plan = _plan_group(optimizer, "the optimizer", state, stored,
                       want if parameters is not None and stored else None)
    new, report = _decide([plan], [state], strict, name, "this optimizer")
    return new[0], report


def _per_parameter_paths(state: dict) -> list[str]:
    paths, seen = [], set()
    for key, _ in tree_flatten(state):
        if "." in key:
            path = key.rsplit(".", 1)[0]
            if path not in seen:
                seen.add(path)
                paths.append(path)
    return paths


def _plan_group(optimizer: Any, who: str, sub: dict, stored: list[str],
                want: dict[str, tuple] | None) -> dict:
    """What to do with one stored (sub-)state: problems, loaded/initialised/unused paths and
    the state to install (``None`` when ``sub`` itself can be installed)."""
    live = {k: v for k, v in optimizer.state.items() if isinstance(v, mx.array)}
    bad_top = top_level_problems(sub, live)
    problems = [f"{who}: its {key!r} has {problem}" for key, problem in bad_top.items()]
    if want is None:
        return {"problems": problems, "loaded": list(stored), "initialised": [], "unused": [],
                "state": _with_top_level(sub, live, bad_top) if bad_top else None}
    stored_set = set(stored)
    missing = [p for p in want if p not in stored_set]
    extra = [p for p in stored if p not in want]
    good, wrong, templates = {}, [], {}
    for path in (p for p in want if p in stored_set):
        key = (tuple(want[path][0]), want[path][1])
        if key not in templates:  # init_single once per shape and dtype, not per path
            templates[key] = template(optimizer, *key)
        entry = existing_entry(sub, path)
        problem = layout_problem(entry, templates[key])
        if problem is None:
            good[path] = entry
        else:
            wrong.append((path, problem))
    if missing:
        problems.append(f"{who}: no state in the file for {describe_paths(missing)}")
    if extra:
        problems.append(f"{who}: the file has state for {describe_paths(extra)}, "
                        "which this optimizer routes elsewhere or does not have")
    for kind in ("shapes", "dtypes", "layouts"):
        paths = [(p, detail) for p, (k, detail) in wrong if k == kind]
        if paths:
            problems.append(f"{who}: different state {kind} for "
                            f"{describe_paths([p for p, _ in paths])} ({paths[0][0]}: "
                            f"{paths[0][1]})")
    changed = bool(missing or extra or wrong or bad_top)
    return {"problems": problems, "loaded": list(good),
            "initialised": missing + [p for p, _ in wrong], "unused": extra,
            "state": _rebuilt(optimizer, sub, want, good, templates, live, bad_top)
            if changed else None}


def _decide(plans: list[dict], subs: list[dict], strict: bool, name: str,
            what: str) -> tuple[list[dict], dict[str, tuple]]:
    problems = [p for plan in plans for p in plan["problems"]]
    if problems and strict:
        raise ValueError(f"the checkpoint {name} does not match {what}:\n  "
                         + "\n  ".join(problems)
                         + "\nload it into an optimizer with the same rules and model, or pass "
                           "strict=False to load what matches and initialise the rest")
    loaded = tuple(p for plan in plans for p in plan["loaded"])
    if all(plan["state"] is None for plan in plans):
        return subs, {"loaded": loaded, "initialised": (), "unused": ()}
    new = [sub if plan["state"] is None else plan["state"] for plan, sub in zip(plans, subs)]
    return new, {"loaded": loaded,
                 "initialised": tuple(p for plan in plans for p in plan["initialised"]),
                 "unused": tuple(p for plan in plans for p in plan["unused"])}


def _with_top_level(sub: dict, live: dict, bad: dict[str, str]) -> dict:
    """``sub`` with each bad optimizer-wide entry replaced by the live one (or dropped)."""
    if not bad:
        return sub
    fixed = {k: v for k, v in sub.items() if k not in bad}
    fixed.update({k: live[k] for k in bad if k in live})
    return fixed


def _rebuilt(optimizer: Any, sub: dict, want: dict[str, tuple], good: dict[str, dict],
             templates: dict, live: dict, bad_top: dict[str, str]) -> dict:
    entries = []
    for path, (shape, dtype) in want.items():
        if path in good:
            entries.append((path, good[path]))
        else:
            fresh = templates.get((tuple(shape), dtype)) or template(optimizer, shape, dtype)
            entries.append((path, dict(fresh)))
    tree = unflatten(entries) if entries else {}
    top = {k: v for k, v in _with_top_level(sub, live, bad_top).items() if isinstance(v, mx.array)}
    top.update(tree)
    return top
