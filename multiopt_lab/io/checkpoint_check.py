"""Compare a checkpoint's groups with an optimizer's, and build what to load.

Example:
    >>> describe_paths(["a", "b", "c"], limit=2)
    "'a', 'b' and 1 more"
"""

from __future__ import annotations

import json
from itertools import repeat
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from multiopt_lab.io.checksum import checksum, file_checksum
from multiopt_lab.io.safetensors_reader import DTYPES, SafetensorsFile
from multiopt_lab.partition.flat_tree import flatten_tree
from multiopt_lab.partition.rule_failures import assign_despite_failures
from multiopt_lab.partition.table import ParameterTable

__all__ = ["expected_groups", "frozen_or_held", "plan_new_state", "plan_single_state", "describe_paths",
           "template", "same_layout", "layout_problem", "top_level_problems", "read_checkpoint",
           "checksum", "unflatten", "metadata_json", "per_parameter_paths", "MAX_LIST_INDEX",
           "ListIndexTooLarge"]

#: Largest list index a checkpoint key may hold (``layers.N``): MLX's
#: ``tree_unflatten`` builds N empty entries, so a corrupt key must not ask for billions.
MAX_LIST_INDEX = 2**20


def unflatten(items: list[tuple[str, Any]], index: dict[str, Any] | None = None) -> Any:
    """``mlx.utils.tree_unflatten`` for checkpoint keys, in one pass over them.

    Lists are made of keys that are all decimal digits, gaps filled with
    ``{}`` as MLX does. MLX's recursive version costs seconds at 100,000 keys.

    Args:
        items: ``(key, value)`` pairs.
        index (dict, optional): Receives, for each key prefix, the dict or
            list the tree holds there (``"layers.1"`` -> ``{'w': 1}``).

    Raises:
        ValueError: A key is also the parent of another (``a`` and ``a.b``),
            or two keys name one list item (``a.1`` and ``a.01``): no tree
            flattens to that. :class:`ListIndexTooLarge` (a ValueError): a
            key indexes a list past :data:`MAX_LIST_INDEX`.

    Example:
        >>> index = {}
        >>> unflatten([("layers.1.w", 1), ("step", 2)], index)
        {'layers': [{}, {'w': 1}], 'step': 2}
        >>> index["layers.1"]
        {'w': 1}
    """
    if len(items) == 1 and items[0][0] == "":
        return items[0][1]
    root: dict = {}
    # Each dict made, by the key prefix that leads to it: a key finds its parent in one
    # look-up (its siblings made it) rather than walking down from the root.
    nodes: dict[str, Any] = {} if index is None else index
    numbered: dict[str, dict] = {}  # the dicts with a child named by digits: lists maybe
    for key, value in items:
        prefix, dot, leaf = key.rpartition(".")
        node = root if not dot else nodes.get(prefix)
        if node is None:
            node = _node_at(prefix, root, nodes, numbered)
        if leaf in node:
            raise ValueError(f"key {key[:80]!r} is also the parent of other keys")
        node[leaf] = value
        if leaf.isdecimal():
            numbered[prefix if dot else None] = node
    return _lists_of(root, nodes, numbered)


def _node_at(prefix: str, root: dict, nodes: dict, numbered: dict) -> dict:
    """The dict at ``prefix``, made with the parents it lacks (recursion as deep as the key;
    read_checkpoint refuses keys of more than 64 parts first)."""
    up, dot, name = prefix.rpartition(".")
    parent = root if not dot else nodes.get(up)
    if parent is None:
        parent = _node_at(up, root, nodes, numbered)
    if name in parent:
        raise ValueError(f"key {prefix[:80]!r} holds a value and is also the parent of "
                         "other keys")
    node = parent[name] = nodes[prefix] = {}
    if name.isdecimal():
        numbered[up if dot else None] = parent
    return node


def _lists_of(root: dict, nodes: dict, numbered: dict) -> Any:
    # Deepest first, so that a list's items are final when it is made.
    for prefix in sorted(numbered, key=lambda p: -1 if p is None else p.count("."),
                         reverse=True):
        node = numbered[prefix]
        if not all(key.isdecimal() for key in node):
            continue
        indices = sorted((_list_index(prefix, key), key) for key in node)
        for (i, first), (j, second) in zip(indices, indices[1:]):
            if i == j:
                where = f"under {prefix[:80]!r}" if prefix is not None else "at the top"
                raise ValueError(f"keys {first[:40]!r} and {second[:40]!r} {where} name the "
                                 "same list item")
        items: list = [{} for _ in range(indices[-1][0] + 1)]
        for index, key in indices:
            items[index] = node[key]
        if prefix is None:
            return items
        parent_prefix, dot, name = prefix.rpartition(".")
        (nodes[parent_prefix] if dot else root)[name] = nodes[prefix] = items
    return root


class ListIndexTooLarge(ValueError):
    """A checkpoint key that indexes a list past :data:`MAX_LIST_INDEX` (``layers.99999999``).

    Attributes:
        key (str): The key up to that index.

    Example:
        >>> unflatten([("layers.99999999.w", 1)])
        Traceback (most recent call last):
        multiopt_lab.io.checkpoint_check.ListIndexTooLarge: key 'layers.99999999' indexes a list past 1048576
    """

    def __init__(self, key: str):
        super().__init__(f"key {key[:80]!r} indexes a list past {MAX_LIST_INDEX}")
        self.key = key


_INDEX_DIGITS = len(str(MAX_LIST_INDEX))


def _list_index(prefix: str | None, key: str) -> int:
    """``int(key)``, refused past MAX_LIST_INDEX before a list that long is made (and
    before ``int`` reads thousands of digits)."""
    if len(key.lstrip("0")) <= _INDEX_DIGITS:
        index = int(key)
        if index <= MAX_LIST_INDEX:
            return index
    raise ListIndexTooLarge(key if prefix is None else f"{prefix}.{key}")


def read_checkpoint(file: str, index: dict[str, Any] | None = None,
                    kinds: dict[str, tuple] | None = None) -> tuple[dict, dict, Any]:
    """``(arrays, metadata, state tree)`` of a safetensors checkpoint, or a ValueError saying
    what is wrong with the file (missing, truncated, corrupted, not a checkpoint).

    The arrays come computed, read in one pass (:mod:`~multiopt_lab.io.safetensors_reader`);
    a file with metadata ``crc32`` must match it (:mod:`~multiopt_lab.io.checksum`).
    ``index`` receives :func:`unflatten`'s index of the tree, ``kinds`` each array's
    ``(shape, dtype)`` by key.

    Example:
        >>> read_checkpoint("missing.safetensors")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: cannot read the checkpoint missing.safetensors: it is missing, truncated ...
    """
    try:
        with SafetensorsFile(file) as stored:
            metadata = stored.metadata
            written = metadata.get("crc32")
            found = None if written is None else file_checksum(stored)
            if written is not None and written != found:
                raise _Corrupted(f"is corrupted: its contents do not match the checksum "
                                 f"written with them (crc32 {written}, found {found}); "
                                 "restore it from a copy")
            _check_keys(stored.keys)
            arrays = stored.arrays
            if kinds is not None:
                kinds.update(stored.kinds)
        state = unflatten(list(arrays.items()), index) if arrays else {}
    except ListIndexTooLarge as err:
        raise ValueError(f"the checkpoint {file} is corrupted or not an optimizer state: "
                         f"{err}") from None
    except _Corrupted as err:
        raise ValueError(f"the checkpoint {file} {err}") from None
    except (ValueError, OSError) as err:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"cannot read the checkpoint {file}: it is missing, truncated or "
                         f"corrupted ({type(err).__name__}: {err})") from None
    return arrays, metadata, state


class _Corrupted(Exception):
    """A file that reads as safetensors but is not one to load (message: after its name)."""


def _check_keys(keys: list[str]) -> None:
    # unflatten recurses once per missing parent: a key must not be deeper than that allows.
    if keys and max(map(str.count, keys, repeat("."))) >= 64:  # counted in C, key by key
        deep = next(k for k in keys if k.count(".") >= 64)
        raise _Corrupted(f"is corrupted or not an optimizer state: key {deep[:80]!r} is "
                         "nested too deep (64 levels or more)")


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
        winners = np.asarray(optimizer.assign(table).winners)
        # One (shape, dtype) per structure, read from its first array, shared by its rows.
        ids = table.structure_ids
        _, first = np.unique(ids, return_index=True)
        layouts = [(table.shapes[i], table.arrays[i].dtype) for i in first.tolist()]
        for g in range(n):  # each group's rows in table order, joined in C
            rows = np.flatnonzero(winners == g)
            groups[g] = dict(zip(map(table.paths.__getitem__, rows.tolist()),
                                 map(layouts.__getitem__, ids[rows].tolist())))
        return groups
    plan = getattr(optimizer, "_plan", None)
    if plan is None:
        return None
    for path, shape, dtype, g in zip(plan.paths, plan.shapes, plan.dtypes, plan.group_index):
        groups[g][path] = (tuple(shape), dtype)
    return groups


def frozen_or_held(optimizer: Any, parameters: Any,
                   expected: list[dict[str, tuple]] | None) -> list[dict[str, Any]] | None:
    """Per group, the state a checkpoint may hold beyond ``expected`` (``path -> layout``):
    what MLX keeps for parameters that are frozen now.

    MLX's optimizers keep the state of a parameter that stops training
    (``model.freeze()``), and use it again when it is unfrozen; a checkpoint
    taken meanwhile holds it. Such an entry is accepted (and loaded) when it
    belongs to a frozen parameter of ``parameters`` (an ``nn.Module``) that
    the optimizer's rules route to that group, with that parameter's shape and
    dtype (layout ``(shape, dtype)``); or, whatever ``parameters`` is, when
    the live optimizer holds state for that path in that group, with the
    same keys, shapes and dtypes (layout: the live entry). A frozen parameter
    the rules fail on (``shape[1]`` on a bias) may sit in any group.

    Returns None when ``expected`` is None (nothing is checked then).
    """
    if expected is None:
        return None
    n = len(optimizer.optimizers)
    optional: list[dict[str, Any]] = [{} for _ in range(n)]
    for g, sub_optimizer in enumerate(optimizer.optimizers):
        want = expected[g]
        for path in per_parameter_paths(flatten_tree(sub_optimizer.state)):
            if path not in want:
                entry = _child_path(sub_optimizer.state, path)
                if isinstance(entry, dict):
                    optional[g][path] = entry
    if isinstance(parameters, nn.Module) and hasattr(optimizer, "filters"):
        everything = ParameterTable.from_tree(parameters.parameters(), model=parameters)
        trainable = set().union(*(want.keys() for want in expected))
        if len(everything) > len(trainable):
            labels = getattr(optimizer, "labels", None)
            assignment, failures = assign_despite_failures(everything, optimizer.filters, labels)
            anywhere = {f.path for f in failures}
            for path, g, array in zip(everything.paths, assignment.winners.tolist(),
                                      everything.arrays):
                if path in trainable:
                    continue
                layout = (tuple(array.shape), array.dtype)
                for group in (range(n) if path in anywhere else (g,)):
                    optional[group].setdefault(path, layout)
    return optional


def _child_path(tree: Any, path: str) -> Any:
    node = tree
    for part in path.split("."):
        node = _child(node, part)
        if node is None:
            return None
    return node


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
    return _layout_problem(entry, fresh, _spec(fresh))


def _spec(fresh: dict) -> list[tuple[str, tuple, Any]]:
    """``(key, shape, dtype)`` of each array of a template, read once for all paths."""
    return [(key, tuple(want.shape), want.dtype) for key, want in fresh.items()]


def _layout_problem(entry: Any, fresh: dict, spec: list[tuple[str, tuple, Any]]
                    ) -> tuple[str, str] | None:
    if not isinstance(entry, dict) or entry.keys() != fresh.keys():
        found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        return "layouts", f"holds {found}, expected {sorted(fresh)}"
    for key, shape, dtype in spec:
        have = entry[key]
        if not isinstance(have, mx.array):
            return "layouts", f"{key!r} is a {type(have).__name__}, expected an array"
        if have.shape != shape:
            return "shapes", f"{key!r} has shape {tuple(have.shape)}, expected {shape}"
        if have.dtype != dtype:
            return "dtypes", f"{key!r} is {_dtype(have.dtype)}, expected {_dtype(dtype)}"
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
                   name: str, index: dict[str, Any] | None = None,
                   kinds: dict[str, tuple] | None = None,
                   optional: list[dict[str, Any]] | None = None
                   ) -> tuple[list[dict], dict[str, tuple]]:
    """The sub-states to install and what happened to each path; raises when strict fails.

    Every check is against the optimizer as it is: its groups' paths (when
    known), each parameter's state keys, shapes and dtypes (what its
    optimizer's ``init_single`` makes), and the optimizer-wide entries it
    holds. Time is linear in the number of paths. ``index`` and ``kinds``:
    :func:`read_checkpoint`'s, to find the entries without walking the tree
    and to check a file that matches throughout in one comparison.
    ``optional``: :func:`frozen_or_held`'s, the state a group may also hold
    (frozen parameters), loaded when it fits.
    """
    if expected is not None and kinds is not None:
        loaded = _all_as_expected(optimizer, subs, stored_paths, expected, kinds)
        if loaded is not None:
            return subs, {"loaded": loaded, "initialised": (), "unused": ()}
    labels = getattr(optimizer, "labels", None) or [str(g) for g in range(len(subs))]
    plans = [_plan_group(o, f"group {label!r}", sub, stored, None if expected is None else want,
                         index, f"states.{g}.", None if optional is None else optional[g])
             for g, (o, label, sub, stored, want) in enumerate(
                 zip(optimizer.optimizers, labels, subs, stored_paths,
                     expected or [None] * len(subs)))]
    return _decide(plans, subs, strict, name, "this optimizer's groups")


def _all_as_expected(optimizer: Any, subs: list[dict], stored_paths: list[list[str]],
                     expected: list[dict[str, tuple]], kinds: dict[str, tuple]
                     ) -> tuple[str, ...] | None:
    """The loaded paths when the file holds exactly what the optimizer expects (every
    group's paths, and under each path the state keys, shapes and dtypes its optimizer
    makes, nothing more), so that the stored sub-states install as they are; None
    when anything differs, for :func:`_plan_group` to say what.

    The file's ``(shape, dtype)`` by key is compared with the one the optimizer
    expects in one dict comparison, rather than entry by entry.
    """
    want_kinds: dict[str, tuple] = {}
    for g, (optimizer_g, sub, stored, want) in enumerate(
            zip(optimizer.optimizers, subs, stored_paths, expected)):
        if len(stored) != len(want) or not all(map(want.__contains__, stored)):
            return None
        live = {k: v for k, v in optimizer_g.state.items() if isinstance(v, mx.array)}
        if top_level_problems(sub, live):
            return None
        prefix = f"states.{g}."
        for key, value in sub.items():  # step, learning_rate...: checked above
            if isinstance(value, mx.array):
                want_kinds[prefix + key] = kinds.get(prefix + key)
        specs: dict[tuple, list] = {}
        for path, layout in want.items():
            spec = specs.get(layout)
            if spec is None:
                fresh = template(optimizer_g, *layout)
                if any(key.isdecimal() for key in fresh):
                    return None  # unflatten made a list of them: the slow path says so
                # The dtype as the file reader gives it, for equal dtypes to be one object.
                spec = specs[layout] = [(f".{key}", (shape, _canonical(dtype)))
                                        for key, shape, dtype in _spec(fresh)]
            for suffix, kind in spec:
                want_kinds[prefix + path + suffix] = kind
    if want_kinds != kinds:
        return None
    return tuple(path for want in expected for path in want)


#: Each MLX dtype as one object (``array.dtype`` makes a new one each time).
_CANONICAL_DTYPES = {dtype: dtype for dtype, _ in DTYPES.values()}


def _canonical(dtype: Any) -> Any:
    return _CANONICAL_DTYPES.get(dtype, dtype)


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
    stored = per_parameter_paths(flatten_tree(state))
    # A state saved before the first step holds no per-parameter entries: MLX
    # makes them at the next step, as for a fresh optimizer.
    checked = parameters is not None and bool(stored)
    optional = None
    if checked:  # the state MLX keeps for frozen parameters (see frozen_or_held)
        optional = frozen_or_held(_AsOneGroup(optimizer), parameters, [want])[0]
    plan = _plan_group(optimizer, "the optimizer", state, stored, want if checked else None,
                       optional=optional)
    new, report = _decide([plan], [state], strict, name, "this optimizer")
    return new[0], report


class _AsOneGroup:
    """One MLX optimizer seen as a multi-optimizer of one group (no rules)."""

    def __init__(self, optimizer: Any):
        self.optimizers, self.filters, self.labels = [optimizer], [], None


def per_parameter_paths(flat: list[tuple[str, Any]], prefix: str = "") -> list[str]:
    """The per-parameter paths of flattened state keys under ``prefix``, in order, each
    once: every key but its last part; optimizer-wide entries (``step``) have none.

    Example:
        >>> per_parameter_paths([("states.0.step", 1), ("states.0.w.m", 2), ("states.0.w.v", 3),
        ...                      ("states.1.b.v", 4)], "states.0.")
        ['w']
    """
    paths: dict[str, None] = {}  # ordered, each path once
    start = len(prefix)
    for key, _ in flat:
        if key.startswith(prefix) and "." in key[start:]:
            paths[key[start:key.rindex(".")]] = None
    return list(paths)


def _plan_group(optimizer: Any, who: str, sub: dict, stored: list[str],
                want: dict[str, tuple] | None, index: dict[str, Any] | None = None,
                prefix: str = "", optional: dict[str, Any] | None = None) -> dict:
    """What to do with one stored (sub-)state: problems, loaded/initialised/unused paths and
    the state to install (``None`` when ``sub`` itself can be installed). ``optional``:
    ``path -> (shape, dtype) or live entry`` the group may also hold (frozen parameters)."""
    live = {k: v for k, v in optimizer.state.items() if isinstance(v, mx.array)}
    bad_top = top_level_problems(sub, live)
    problems = [f"{who}: its {key!r} has {problem}" for key, problem in bad_top.items()]
    if want is None:
        return {"problems": problems, "loaded": list(stored), "initialised": [], "unused": [],
                "state": _with_top_level(sub, live, bad_top) if bad_top else None}
    stored_set = set(stored)
    missing = [p for p in want if p not in stored_set]
    extra = [p for p in stored if p not in want]
    good, wrong, templates, specs = {}, [], {}, {}
    kept: dict[str, dict] = {}  # entries of frozen parameters, loaded as they are
    if extra and optional:
        extra, kept, wrong = _optional_entries(optimizer, sub, extra, optional, index, prefix)
    for path, entry in _entries_at(sub, [p for p in want if p in stored_set], index,
                                   prefix).items():
        layout = want[path]  # (shape, dtype)
        fresh = templates.get(layout)
        if fresh is None:  # init_single once per shape and dtype, not per path
            fresh = templates[layout] = template(optimizer, *layout)
            specs[layout] = _spec(fresh)
        problem = _layout_problem(entry, fresh, specs[layout])
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
    frozen_wrong = [p for p, _ in wrong if p not in want]
    return {"problems": problems, "loaded": list(good) + list(kept),
            "initialised": missing + [p for p, _ in wrong if p in want],
            "unused": extra + frozen_wrong,
            "state": _rebuilt(optimizer, sub, want, good, templates, live, bad_top, kept)
            if changed else None}


def _optional_entries(optimizer: Any, sub: dict, extra: list[str], optional: dict[str, Any],
                      index: dict[str, Any] | None, prefix: str
                      ) -> tuple[list[str], dict[str, dict], list[tuple[str, tuple]]]:
    """Split the stored paths a group does not expect: ``(still extra, kept, wrong)``.

    An entry of a frozen parameter is kept when it has the layout the group's
    optimizer makes for it (or the live entry's); one of the wrong layout is
    reported as ``(path, (kind, detail))``."""
    maybe = [p for p in extra if p in optional]
    if not maybe:
        return extra, {}, []
    kept: dict[str, dict] = {}
    wrong: list[tuple[str, tuple]] = []
    templates: dict[tuple, dict] = {}
    for path, entry in _entries_at(sub, maybe, index, prefix).items():
        like = optional[path]
        if isinstance(like, dict):
            fresh = like
        else:
            fresh = templates.get(like)
            if fresh is None:
                fresh = templates[like] = template(optimizer, *like)
        problem = _layout_problem(entry, fresh, _spec(fresh))
        if problem is None:
            kept[path] = entry
        else:
            wrong.append((path, problem))
    taken = set(kept) | {p for p, _ in wrong}
    return [p for p in extra if p not in taken], kept, wrong


_UNSEEN = object()


def _entries_at(tree: Any, paths: list[str], index: dict[str, Any] | None = None,
                prefix: str = "") -> dict[str, dict | None]:
    """``existing_entry(tree, path)`` for each path, in order.

    ``index`` (:func:`unflatten`'s, where ``tree`` lies at ``prefix``) gives
    most in one look-up: under a path as written in the file, which is the
    path itself unless the file wrote a list index otherwise (``03``). The
    others walk the tree, a parent shared by several paths looked up once.
    """
    found: dict[str, dict | None] = {}
    if index is not None:
        for path in paths:
            entry = index.get(prefix + path) if path else None
            found[path] = entry if type(entry) is dict else None
        walk = [path for path, entry in found.items() if entry is None]
        if walk:
            found.update(_entries_at(tree, walk))
        return found
    parents: dict[str, Any] = {}  # prefix -> what is there (None: nothing)
    for path in paths:
        prefix, dot, name = path.rpartition(".")
        parent = parents.get(prefix, _UNSEEN) if dot else tree
        if parent is _UNSEEN:
            parent = _node_of(tree, prefix, parents)
        entry = _child(parent, name) if path else tree
        found[path] = entry if isinstance(entry, dict) else None
    return found


def _node_of(tree: Any, prefix: str, parents: dict[str, Any]) -> Any:
    """What ``tree`` holds at ``prefix`` (None: nothing), remembered in ``parents`` with
    the prefixes above it."""
    chain, node = [], _UNSEEN
    while node is _UNSEEN:
        chain.append(prefix)
        prefix, dot, _ = prefix.rpartition(".")
        node = parents.get(prefix, _UNSEEN) if dot else tree
    for part in reversed(chain):
        node = parents[part] = _child(node, part[part.rfind(".") + 1:])
    return node


def _child(node: Any, key: str) -> Any:
    """``node[key]`` as :func:`~multiopt_lab.optimizer.trees.state_entry` reads it; None
    when there is nothing."""
    if type(node) is dict:
        return node.get(key)
    if node is None:
        return None
    try:
        return node[int(key)] if isinstance(node, (list, tuple)) else node[key]
    except (KeyError, IndexError, TypeError, ValueError):
        return None


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
             templates: dict, live: dict, bad_top: dict[str, str],
             kept: dict[str, dict] | None = None) -> dict:
    entries = []
    for path, (shape, dtype) in want.items():
        if path in good:
            entries.append((path, good[path]))
        else:
            fresh = templates.get((tuple(shape), dtype)) or template(optimizer, shape, dtype)
            entries.append((path, dict(fresh)))
    entries += list((kept or {}).items())
    tree = unflatten(entries) if entries else {}
    top = {k: v for k, v in _with_top_level(sub, live, bad_top).items() if isinstance(v, mx.array)}
    top.update(tree)
    return top
