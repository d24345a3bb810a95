"""Near misses: parameters the fallback took that look like what a rule took.

The fallback catching norms and biases is MLX's design; the fallback catching
a 3-D expert stack while a rule took the 2-D Linear weights beside it, or a
position embedding while a rule took the token embedding, is likely a
mistake. A parameter ``p`` the fallback took is a near miss of rule ``g``
when ``g`` took a parameter ``q`` that

* sits in the same block as ``p`` (the same ``layers.N``, the first numbered
  element of their paths; everything outside numbered blocks is one block),
* has the same name (``weight``) and the same module family (``Linear`` for
  ``Linear``, ``SwitchLinear``, ``QuantizedLinear``, ``LoRALinear``;
  ``Embedding``; ``Norm`` for ``RMSNorm`` and ``LayerNorm``...), or, when the
  module classes are unknown (a parameter dict), both have at least 2 dims,

and ``g`` failed on ``p`` only for reasons that look accidental. Of the
conditions of ``g`` joined by ``and``, those ``p`` fails must each be

* about the shape, dtype or module class (``ndim == 2``, ``module ==
  "Linear"``): ``p`` differs from ``q`` in form only, or
* a test of the path or name that guesses the kind of layer by name
  (``glob("*embed*")`` for embeddings, ``"norm" in path``): a word of it is
  part of ``q``'s class name.

A negated condition (``not glob("*embed*")``, ``module != "Embedding"``,
``"x" not in path``) that ``p`` fails excludes it on purpose, and a path test
naming roles (``glob("*.q_proj.*")``) picks parameters by name on purpose:
neither is a near miss. A Python callable cannot be read: any look-alike it
left out counts.

Example:
    >>> import mlx.core as mx
    >>> from multiopt_lab.partition.assignment import assign
    >>> tree = {"layers": [{"q": {"weight": mx.zeros((4, 4))}, "experts": {"weight": mx.zeros((2, 4, 4))}}]}
    >>> assign(tree, ["ndim == 2"], ["muon", "adamw"]).diagnostics.near_misses[0].path
    'layers.0.experts.weight'
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import functools
import re
import weakref

from multiopt_lab.partition.modules import family
from multiopt_lab.rules.logic import And, Not
from multiopt_lab.rules.nodes import Compare, Constant

_PER_PATH = frozenset({"path", "name"})
_WORD = re.compile(r"[A-Za-z]{3,}")

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

    Example:
        >>> NearMiss("a.w", "muon", "b.w", "SwitchLinear [2, 4, 4]", "Linear [4, 4]").label
        'muon'
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

    Example:
        >>> block_of("model.layers.3.mlp.layers.0.weight"), block_of("lm_head.weight")
        ('model.layers.3', '')
    """
    found = _FIRST_NUMBER.search(path)
    return path[:found.end() - 1] if found else ""


def block_pattern(path: str) -> str:
    """The path with its block number replaced by ``*``: the same parameter in every block.

    Example:
        >>> block_pattern("model.layers.3.mlp.layers.0.weight"), block_pattern("lm_head.weight")
        ('model.layers.*.mlp.layers.0.weight', 'lm_head.weight')
    """
    parts = path.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[:i] + ["*"] + parts[i + 1:])
    return path


def _conditions(node) -> list:
    """The conditions joined by ``and`` at the top of a rule, nested ``and`` flattened."""
    if isinstance(node, And):
        return [c for operand in node.operands for c in _conditions(operand)]
    return [node]


def _words(node) -> set[str]:
    """The words (3+ letters, lower case) of the strings and patterns a condition holds."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        texts = []
        if isinstance(item, Constant) and isinstance(item.value, str):
            texts.append(item.value)
        literal = getattr(item, "literal_test", None)
        if literal is not None:
            texts.append(literal[1])
        pattern = getattr(getattr(getattr(item, "matcher", None), "__self__", None), "pattern", None)
        if isinstance(pattern, str):
            texts.append(pattern)
        for text in texts:
            found.update(w.lower() for w in _WORD.findall(text))
        for attribute in ("left", "right", "operand", "value"):
            child = getattr(item, attribute, None)
            if hasattr(child, "row"):
                stack.append(child)
        for attribute in ("operands", "items"):
            stack.extend(c for c in getattr(item, attribute, ()) if hasattr(c, "row"))
    return found


@functools.lru_cache(maxsize=1024)
def _kind_words(kind: str | None) -> frozenset:
    return frozenset({kind.lower(), (family(kind) or "").lower()}) if kind else frozenset()


def _nearly(rule, row: tuple, like_kind: str | None) -> bool:
    """Whether ``rule`` failed on ``row`` only by accident (see the module docstring)."""
    root = getattr(rule, "_root", None)
    if root is None:  # a Python callable: no telling why it said no
        return True
    kind_words = _kind_words(like_kind)
    for condition in _conditions(root):
        try:
            if condition.row(row):
                continue
        except Exception:  # cannot be evaluated on this row: it fails here, for its form
            pass
        if isinstance(condition, Not) or (
                isinstance(condition, Compare) and condition.op in ("!=", "not in")):
            return False  # excluded on purpose
        if condition.names & _PER_PATH and not any(
                word in kind for word in _words(condition) for kind in kind_words):
            return False  # picked by name on purpose
    return True


def _describe(table, i: int) -> str:
    shape = "[" + ", ".join(map(str, table.shapes[i])) + "]"
    kind = table.module_names[i]
    return f"{kind} {shape}" if kind else shape


def find_near_misses(table, rules, winners: np.ndarray, labels) -> tuple[NearMiss, ...]:
    """Every near miss of an assignment, in parameter order (see the module docstring).

    Args:
        table (ParameterTable): The parameters.
        rules (Sequence[Rule]): The rules, one per group but the fallback.
        winners (numpy.ndarray): Group index of each parameter.
        labels (Sequence[str]): Group labels, fallback last.

    Example:
        >>> import mlx.nn as nn
        >>> from multiopt_lab.partition.table import ParameterTable
        >>> from multiopt_lab.rules import rule
        >>> t = ParameterTable.from_tree(nn.Linear(2, 2))
        >>> find_near_misses(t, [rule("ndim == 2")], np.array([0, 1]), ["muon", "adamw"])
        ()
    """
    n_rules = len(labels) - 1
    if not n_rules or not (winners == n_rules).any():
        return ()
    keys = _row_keys(table)
    eligible = keys >= 0
    fallback = np.flatnonzero((winners == n_rules) & eligible)
    taken = np.flatnonzero((winners < n_rules) & eligible)
    if not len(fallback) or not len(taken):
        return ()
    # The first parameter each rule took, per look-alike key (block, name, family).
    wanted = set(keys[fallback].tolist())
    combined = keys[taken] * n_rules + winners[taken]
    unique, first = np.unique(combined, return_index=True)
    like: dict[int, dict[int, int]] = {}
    for code, q in zip(unique.tolist(), taken[first].tolist()):
        key, g = divmod(code, n_rules)
        if key in wanted:
            like.setdefault(key, {})[g] = q
    paths, shapes, kinds_of = table.paths, table.shapes, table.module_names
    kind_ids = table.kind_ids
    descriptions: dict[tuple, str] = {}
    verdicts: dict[tuple, bool] = {}

    def described(i: int) -> str:
        key_ = (kinds_of[i], shapes[i])
        if key_ not in descriptions:
            descriptions[key_] = _describe(table, i)
        return descriptions[key_]

    per_kind = [getattr(r, "names", None) is not None and not r.names & _PER_PATH for r in rules]
    found = []
    for p, key in zip(fallback.tolist(), keys[fallback].tolist()):
        candidates = like.get(key)
        if candidates is None:
            continue
        for g in sorted(candidates):
            q = candidates[g]
            if per_kind[g]:  # the rule reads no path: the verdict is the same for a whole kind
                cached = (g, int(kind_ids[p]), kinds_of[q])
                nearly = verdicts.get(cached)
                if nearly is None:
                    nearly = verdicts[cached] = _nearly(rules[g], table.rows[p], kinds_of[q])
            else:
                nearly = _nearly(rules[g], table.rows[p], kinds_of[q])
            if nearly:
                found.append(NearMiss(paths[p], labels[g], paths[q], described(p), described(q)))
                break
    return tuple(found)


_KEYS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _row_keys(table) -> np.ndarray:
    """Per row, an id of (block, name, module family); -1 for a row that can look like nothing
    (without module classes: fewer than 2 dims). Kept per table: the editor reassigns one
    table on every keystroke."""
    try:
        return _KEYS[table]
    except (KeyError, TypeError):
        pass
    blocks: dict[str, int] = {}
    block_ids = [blocks.setdefault(block_of(p), len(blocks)) for p in table.paths]
    if table.has_modules:
        families = {k: family(k) for k in set(table.module_names)}
        second = [families[k] for k in table.module_names]
    else:
        second = [None if n >= 2 else False for n in table.ndims]
    index: dict[tuple, int] = {}
    keys = np.array([-1 if f is False else index.setdefault((b, n, f), len(index))
                     for b, n, f in zip(block_ids, table.names, second)], dtype=np.int64)
    try:
        _KEYS[table] = keys
    except TypeError:
        pass
    return keys
