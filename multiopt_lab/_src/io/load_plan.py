"""Plan a load: what to install from a checkpoint's (sub-)states, and what happened to each path.

Every stored per-parameter entry is checked against what the group's
optimizer makes for that parameter (:mod:`~multiopt_lab._src.optimizer.state_layout`:
keys, shapes, exact dtypes), every optimizer-wide entry against the live one.
A strict plan raises naming every mismatch; otherwise what fits is loaded and
the rest initialised.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from multiopt_lab._src.io.expected_state import frozen_or_held
from multiopt_lab._src.io.safetensors_reader import DTYPES
from multiopt_lab._src.optimizer.state_layout import (fresh_entry, layout_of, layout_problem,
                                                 per_parameter_paths, top_level_problems)
from multiopt_lab._src.partition.table import ParameterTable
from multiopt_lab._src.text_fit import describe_paths
from multiopt_lab._src.trees.flatten import flatten_tree
from multiopt_lab._src.trees.lookup import nodes_at
from multiopt_lab._src.trees.unflatten import unflatten

__all__ = ["plan_new_state", "plan_single_state"]


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
    :func:`~multiopt_lab._src.io.checkpoint_read.read_checkpoint`'s, to find the
    entries without walking the tree and to check a file that matches
    throughout in one comparison. ``optional``:
    :func:`~multiopt_lab._src.io.expected_state.frozen_or_held`'s, the state a group
    may also hold (frozen parameters), loaded when it fits.
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
                     expected or [None] * len(subs)))]  # type: ignore[list-item]  # None: nothing expected
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
    want_kinds: dict[str, tuple | None] = {}
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
                fresh = fresh_entry(optimizer_g, *layout)
                if any(key.isdecimal() for key in fresh):
                    return None  # unflatten made a list of them: the slow path says so
                # The dtype as the file reader gives it, for equal dtypes to be one object.
                spec = specs[layout] = [(f".{key}", (shape, _canonical(dtype)))
                                        for key, shape, dtype in layout_of(fresh)]
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
        optional = frozen_or_held(_AsOneGroup(optimizer), parameters, [want])[0]  # type: ignore[index]  # a list, given one
    plan = _plan_group(optimizer, "the optimizer", state, stored, want if checked else None,
                       optional=optional)
    new, report = _decide([plan], [state], strict, name, "this optimizer")
    return new[0], report


class _AsOneGroup:
    """One MLX optimizer seen as a multi-optimizer of one group (no rules)."""

    def __init__(self, optimizer: Any):
        self.optimizers, self.labels = [optimizer], None
        self.filters: list = []




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
    good: dict[str, dict] = {}
    wrong: list[tuple[str, tuple]] = []
    templates: dict[tuple, dict] = {}
    specs: dict[tuple, Any] = {}
    kept: dict[str, dict] = {}  # entries of frozen parameters, loaded as they are
    if extra and optional:
        extra, kept, wrong = _optional_entries(optimizer, sub, extra, optional, index, prefix)
    for path, entry in _entries_at(sub, [p for p in want if p in stored_set], index,
                                   prefix).items():
        layout = want[path]  # (shape, dtype)
        fresh = templates.get(layout)
        if fresh is None:  # init_single once per shape and dtype, not per path
            fresh = templates[layout] = fresh_entry(optimizer, *layout)
            specs[layout] = layout_of(fresh)
        problem = layout_problem(entry, fresh, specs[layout])
        if problem is None:
            good[path] = entry  # type: ignore[assignment]  # no problem: a dict
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
            if like not in templates:
                templates[like] = fresh_entry(optimizer, *like)
            fresh = templates[like]
        problem = layout_problem(entry, fresh)
        if problem is None:
            kept[path] = entry  # type: ignore[assignment]  # no problem: a dict
        else:
            wrong.append((path, problem))
    taken = set(kept) | {p for p, _ in wrong}
    return [p for p in extra if p not in taken], kept, wrong




def _entries_at(tree: Any, paths: list[str], index: dict[str, Any] | None = None,
                prefix: str = "") -> dict[str, dict | None]:
    """The per-parameter state dict at each path (None: none), in order.

    ``index`` (:func:`~multiopt_lab._src.trees.unflatten.unflatten`'s, where ``tree``
    lies at ``prefix``) gives most in one look-up: under a path as written in
    the file, which is the path itself unless the file wrote a list index
    otherwise (``03``). The others walk the tree
    (:func:`~multiopt_lab._src.trees.lookup.nodes_at`).
    """
    found: dict[str, dict | None] = {}
    if index is not None:
        for path in paths:
            entry = index.get(prefix + path) if path else None
            found[path] = entry if type(entry) is dict else None
        walk = [path for path, entry in found.items() if entry is None]
    else:
        walk = paths
    if walk:
        found.update((path, entry if isinstance(entry, dict) else None)
                     for path, entry in nodes_at(tree, walk).items())
    return found


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
            fresh = templates.get((tuple(shape), dtype)) or fresh_entry(optimizer, shape, dtype)
            entries.append((path, dict(fresh)))
    entries += list((kept or {}).items())
    tree = unflatten(entries) if entries else {}
    top = {k: v for k, v in _with_top_level(sub, live, bad_top).items() if isinstance(v, mx.array)}
    top.update(tree)
    return top
