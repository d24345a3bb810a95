"""Near misses: parameters the fallback took that look like what a rule took.

The fallback catching norms and biases is MLX's design; the fallback catching
a 3-D expert stack while a rule took the 2-D Linear weights beside it is
likely a mistake. Whether a parameter is a near miss depends only on the
assignment and the model, never on how a rule is written: two partitions that
give the same assignment give the same near misses.

Parameters *look alike* when they sit in the same block (the same
``layers.N``, the first numbered element of their paths; everything outside
numbered blocks is one block), have the same name (``weight``) and the same
module family (``Linear`` for ``Linear``, ``SwitchLinear``,
``QuantizedLinear``, ``LoRALinear``; ``Embedding``; ``Norm`` for ``RMSNorm``
and ``LayerNorm``...), or, when the module classes are unknown (a parameter
dict), both have at least 2 dimensions. Their *form* is their module class,
number of dimensions and dtype.

Among look-alikes, a rule ``g`` that took some and left others to the
fallback split them either by form or by name. By form (every look-alike the
fallback took has a form none of those ``g`` took: 3-D ``SwitchLinear``
stacks beside 2-D ``Linear`` weights) the split is likely an accident, and
what the fallback took are near misses of ``g``. By name (the fallback also
holds look-alikes of the very form ``g`` took: ``v`` and ``o`` beside the
``q`` and ``k`` a rule picked, the router gate beside the attention
projections) it is on purpose: no near miss.

With the optimizers known, a parameter whose optimizer contract it breaks
is the likely mistake, not its look-alikes: a rule's group that took a norm
Muon cannot train does not make the norms the fallback took near misses
(the contract finding names the misplaced norm instead), and a parameter
the rule's optimizer could not train at all is never a near miss of it.
"""

from __future__ import annotations

import re
import weakref
from typing import NamedTuple

import numpy as np

from multiopt_lab._src.partition.modules import family

__all__ = ["NearMiss", "find_near_misses", "block_of", "block_pattern"]


class NearMiss(NamedTuple):
    """A parameter the fallback took that looks like one a rule took.

    Attributes:
        path (str): The parameter the fallback took.
        label (str): The group whose rule nearly matched it.
        like (str): A parameter that rule took, which it resembles.
        kind (str): Module class and shape of ``path`` (``"SwitchLinear [2, 4, 4]"``;
            the shape alone without a model).
        like_kind (str): The same for ``like``.
    """

    path: str
    label: str
    like: str
    kind: str
    like_kind: str

    @property
    def detail(self) -> str:
        """``"SwitchLinear [2, 4, 4] vs Linear [4, 4]"``."""
        return f"{self.kind} vs {self.like_kind}"


_FIRST_NUMBER = re.compile(r"(?:^|\.)\d+\.")


def block_of(path: str) -> str:
    """The block a path sits in: its prefix up to the first numbered part, ``""`` for none.
    """
    found = _FIRST_NUMBER.search(path)
    return path[:found.end() - 1] if found else ""


def block_pattern(path: str) -> str:
    """The path with its block number replaced by ``*``: the same parameter in every block.
    """
    parts = path.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[:i] + ["*"] + parts[i + 1:])
    return path




def describe_row(table, i: int) -> str:
    """``"SwitchLinear [4, 32, 64]"``: a parameter's module class and shape (the shape alone
    without the model).
    """
    shape = "[" + ", ".join(map(str, table.shapes[i])) + "]"
    kind = table.module_names[i]
    return f"{kind} {shape}" if kind else shape


def find_near_misses(table, winners: np.ndarray, labels, unfit=None,
                     untrainable=None) -> tuple[NearMiss, ...]:
    """Every near miss of an assignment, in parameter order (see the module docstring).

    Args:
        table (ParameterTable): The parameters.
        winners (numpy.ndarray): Group index of each parameter (``len(labels) - 1``:
            the fallback).
        labels (Sequence[str]): Group labels, fallback last.
        unfit (numpy.ndarray, optional): ``(len(labels), len(table))`` bools: the
            parameter breaks the contract of that group's optimizer (an error or
            a warning). Such a parameter a rule took is no evidence of what the
            rule wants. Default: ``None`` (optimizers unknown).
        untrainable (numpy.ndarray, optional): The same shape: the group's
            optimizer cannot train that parameter (an error); it is never a
            near miss of that group. Default: ``None``.
    """
    n_rules = len(labels) - 1
    winners = np.asarray(winners)
    if not n_rules or not len(winners) or not (winners == n_rules).any():
        return ()
    keys, forms = _row_keys(table)
    rows = np.arange(len(winners))
    eligible = keys >= 0
    fallback = np.flatnonzero((winners == n_rules) & eligible)
    taken_mask = (winners < n_rules) & eligible
    if unfit is not None:
        taken_mask &= ~unfit[np.minimum(winners, n_rules), rows]
    taken = np.flatnonzero(taken_mask)
    if not len(fallback) or not len(taken):
        return ()
    n_forms = int(forms.max()) + 1
    # (key, form) pairs the fallback holds; (key, group) pairs the rules took, with the forms
    # taken. A (key, group) pair whose forms all differ from what the fallback holds in that
    # key split its look-alikes by form. All in numpy: this runs on every keystroke.
    held = np.unique(keys[fallback] * n_forms + forms[fallback])
    key_group = keys[taken] * n_rules + winners[taken]
    shared = np.isin(keys[taken] * n_forms + forms[taken], held)
    pairs, inverse = np.unique(key_group, return_inverse=True)
    overlapping = np.zeros(len(pairs), dtype=bool)
    np.logical_or.at(overlapping, inverse, shared)
    first = np.full(len(pairs), len(winners), dtype=np.int64)
    np.minimum.at(first, inverse, taken)
    pair_keys = pairs // n_rules
    chosen = ~overlapping & np.isin(pair_keys, held // n_forms)
    if not chosen.any():
        return ()
    # Per look-alike key: the rules that split it by form, in partition order.
    by_form: dict[int, list[tuple[int, int]]] = {}
    for code, q in zip(pairs[chosen].tolist(), first[chosen].tolist()):
        by_form.setdefault(code // n_rules, []).append((code % n_rules, q))
    candidates = fallback[np.isin(keys[fallback], pair_keys[chosen])]
    paths, kinds, shapes = table.paths, table.module_names, table.shapes
    descriptions: dict[tuple, str] = {}

    def described(i: int) -> str:
        kind = (kinds[i], shapes[i])
        if kind not in descriptions:
            descriptions[kind] = describe_row(table, i)
        return descriptions[kind]

    blocked = untrainable[:, candidates].T.tolist() if untrainable is not None else None
    found = []
    for j, (p, key) in enumerate(zip(candidates.tolist(), keys[candidates].tolist())):
        for g, q in by_form[key]:
            if blocked is not None and blocked[j][g]:
                continue
            found.append(NearMiss(paths[p], labels[g], paths[q], described(p), described(q)))
            break
    return tuple(found)


_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _row_keys(table) -> tuple[np.ndarray, np.ndarray]:
    """Per row, an id of its look-alike class (block, name, module family; -1 for a row that
    can look like nothing: without module classes, one below 2 dims) and an id of its form
    (module class, ndim, dtype). Kept per table: the editor reassigns one table on every
    keystroke."""
    try:
        return _KEYS[table]
    except (KeyError, TypeError):
        pass
    blocks: dict[str, int] = {}
    block_ids = [blocks.setdefault(block_of(p), len(blocks)) for p in table.paths]
    second: list[str | bool | None]
    if table.has_modules:
        families = {k: family(k) for k in set(table.module_names)}
        second = [families[k] for k in table.module_names]
    else:
        second = [None if n >= 2 else False for n in table.ndims]
    index: dict[tuple, int] = {}
    keys = np.array([-1 if f is False else index.setdefault((b, n, f), len(index))
                     for b, n, f in zip(block_ids, table.names, second)], dtype=np.int64)
    form_index: dict[tuple, int] = {}
    forms = np.array([form_index.setdefault(form, len(form_index)) for form in
                      zip(table.module_names, table.ndims, table.dtypes)], dtype=np.int64)
    try:
        _KEYS[table] = keys, forms
    except TypeError:
        pass
    return keys, forms
