"""The layout of an optimizer's state, and whether a state fits it: one home, one dtype rule.

A per-parameter state entry (``{"m": ..., "v": ...}``) fits a parameter when
it has the keys, shapes and exact dtypes that the optimizer's own
``init_single`` makes for that parameter's shape and dtype (the *fresh*
entry). Exact dtypes, not "the same kind": MLX's optimizers keep every state
array in the dtype ``init_single`` gave it, step after step (SGD, RMSprop,
Adagrad, AdaDelta, Adam, AdamW, Adamax, Lion, Adafactor and Muon, in
float32, bfloat16 and float16, checked in ``tests/test_state_layout.py``),
and a state of another precision silently changes the parameter's: a
float32 momentum turns a bfloat16 weight into float32 at the next step. The
same rule serves a checkpoint being loaded (:mod:`multiopt_lab._src.io`) and a
state already held when a new structure is routed
(:class:`~multiopt_lab._src.optimizer.router.Router`).
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from multiopt_lab._src.rules.features import dtype_name
from multiopt_lab._src.trees.lookup import node_at

__all__ = ["fresh_entry", "layout_of", "layout_problem", "top_level_problems",
           "state_mismatches", "existing_entry", "per_parameter_paths"]

#: ``(key, shape, dtype)`` of each array of a fresh entry.
Layout = list[tuple[str, tuple, Any]]


def fresh_entry(optimizer: Any, shape: tuple, dtype: Any) -> dict:
    """A fresh per-parameter state for ``shape``/``dtype``, as ``optimizer`` makes it
    (lazy zeros, never computed).
    """
    state: dict = {}
    optimizer.init_single(mx.zeros(shape, dtype), state)  # lazy: never computed
    return state


def layout_of(fresh: dict) -> Layout:
    """``(key, shape, dtype)`` of each array of a fresh entry, read once for many paths.
    """
    return [(key, tuple(want.shape), want.dtype) for key, want in fresh.items()]


def layout_problem(entry: Any, fresh: dict, layout: Layout | None = None
                   ) -> tuple[str, str] | None:
    """What differs between a per-parameter state ``entry`` and ``fresh`` (a
    :func:`fresh_entry`): ``(kind, detail)`` with kind ``"layouts"`` (other keys, or
    not arrays), ``"shapes"`` or ``"dtypes"``; None when it fits.

    Args:
        entry: The state held or stored for one parameter.
        fresh (dict): What the optimizer makes for that parameter.
        layout (optional): :func:`layout_of` ``(fresh)``, when checking many entries.
    """
    if not isinstance(entry, dict) or entry.keys() != fresh.keys():
        found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        return "layouts", f"holds {found}, expected {sorted(fresh)}"
    for key, shape, dtype in layout_of(fresh) if layout is None else layout:
        have = entry[key]
        if not isinstance(have, mx.array):
            return "layouts", f"{key!r} is a {type(have).__name__}, expected an array"
        if have.shape != shape:
            return "shapes", f"{key!r} has shape {tuple(have.shape)}, expected {shape}"
        if have.dtype != dtype:
            return "dtypes", f"{key!r} is {dtype_name(have.dtype)}, expected {dtype_name(dtype)}"
    return None


def top_level_problems(stored: dict, live: dict) -> dict[str, str]:
    """Optimizer-wide entries (``step``, ``learning_rate``...) of a stored sub-state that
    cannot replace the live optimizer's: key -> what is wrong.

    An entry the live state has must keep its shape and dtype; one it lacks
    must be a real scalar (a learning rate of shape (3, 1, 1) would broadcast
    every parameter to three copies; a complex one would make them complex).
    """
    problems = {}
    for key, value in stored.items():
        if not isinstance(value, mx.array):
            continue
        want = live.get(key)
        if isinstance(want, mx.array):
            if value.shape == want.shape and value.dtype == want.dtype:
                continue
            expected = f"shape {tuple(want.shape)} and {dtype_name(want.dtype)}"
        elif value.ndim == 0 and not mx.issubdtype(value.dtype, mx.complexfloating):
            continue
        else:
            expected = "a real scalar"
        problems[key] = (f"shape {tuple(value.shape)} and dtype {dtype_name(value.dtype)}, "
                         f"expected {expected}")
    return problems


def _described(value: Any) -> str:
    if isinstance(value, mx.array):
        return f"shape {tuple(value.shape)} {dtype_name(value.dtype)}"
    return type(value).__name__


def state_mismatches(live: Any, new: Any, prefix: str = "") -> list[str]:
    """Where ``new`` holds an array of another shape or dtype than ``live`` at the same place.

    Only places both hold are compared: a state may have entries the live
    one lacks (parameters not stepped yet), and lack some (initialised later).
    """
    found: list[str] = []
    if isinstance(live, dict) and isinstance(new, dict):
        for key, value in live.items():
            if key in new:
                found += state_mismatches(value, new[key], f"{prefix}{key}.")
    elif isinstance(live, (list, tuple)) and isinstance(new, (list, tuple)):
        for i, (value, other) in enumerate(zip(live, new)):
            found += state_mismatches(value, other, f"{prefix}{i}.")
    elif isinstance(live, mx.array):
        same = isinstance(new, mx.array) and new.shape == live.shape and new.dtype == live.dtype
        if not same:
            found.append(f"{prefix[:-1]}: expected {_described(live)}, found {_described(new)}")
    return found


def existing_entry(tree: Any, path: str) -> dict | None:
    """The per-parameter state dict at ``path`` in a group's state tree, or None.
    """
    entry = node_at(tree, path)
    return entry if isinstance(entry, dict) else None


def per_parameter_paths(flat: list[tuple[str, Any]], prefix: str = "") -> list[str]:
    """The per-parameter paths of flattened state keys under ``prefix``, in order, each
    once: every key but its last part; optimizer-wide entries (``step``) have none.
    """
    paths: dict[str, None] = {}  # ordered, each path once
    start = len(prefix)
    for key, _ in flat:
        if key.startswith(prefix) and "." in key[start:]:
            paths[key[start:key.rindex(".")]] = None
    return list(paths)
