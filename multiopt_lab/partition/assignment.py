"""Apply ordered rules to a parameter tree exactly as ``MultiOptimizer`` routes it.

First match wins; the last group is the fallback and takes no rule.

Example:
    >>> import mlx.core as mx
    >>> params = {"embed": {"weight": mx.zeros((10, 4))},
    ...           "fc": {"weight": mx.zeros((4, 4)), "bias": mx.zeros((4,))}}
    >>> a = assign(params, ['ndim == 2 and not glob("*embed*")'], ["muon", "adamw"])
    >>> a.labels
    {'embed.weight': 'adamw', 'fc.weight': 'muon', 'fc.bias': 'adamw'}
"""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd

from multiopt_lab.partition.frames import group_summary, parameter_frame
from multiopt_lab.partition.labels import check_labels
from multiopt_lab.partition.moves import Moves
from multiopt_lab.partition.text import format_assignment
from multiopt_lab.text_fit import DEFAULT_WIDTH
from multiopt_lab.partition.diagnostics import CoverageError, Diagnostics, NearMissWarning, diagnose
from multiopt_lab.display import html_for
from multiopt_lab.rules.cache import cached_select
from multiopt_lab.rules import Rule, RuleError, as_rule
from multiopt_lab.partition.table import ParameterTable

__all__ = ["assign", "Assignment", "Move", "Moves", "CoverageError", "check_labels"]


class Move(NamedTuple):
    """A parameter changing group between two assignments (None: absent on that side).

    Example:
        >>> Move("embed.weight", "muon", "adamw")
        Move(path='embed.weight', source='muon', target='adamw')
    """

    path: str
    source: str | None
    target: str | None


def assign(parameters: Any, filters: Sequence[Any], labels: Sequence[str] | None = None) -> "Assignment":
    """Route every parameter to a group, as ``MultiOptimizer(optimizers, filters)`` would.

    Args:
        parameters: A parameter tree, an ``nn.Module`` (its trainable
            parameters) or a ``ParameterTable``.
        filters (list): One per group but the last: rule strings, ``Rule``s or
            callables ``(path, array) -> bool``, mixed freely.
        labels (list[str], optional): Unique group names, ``len(filters) + 1``
            of them, the fallback last. Default: ``group_0 .. group_N``.

    Raises:
        RuleError: A rule does not parse, or fails on a parameter it is asked
            about (MLX asks rule i only about parameters rules 0..i-1 left).

    Example:
        >>> import mlx.nn as nn
        >>> assign(nn.Linear(3, 2), ["ndim == 2"]).labels
        {'weight': 'group_0', 'bias': 'group_1'}
    """
    if isinstance(filters, (str, Rule)) or callable(filters):
        raise TypeError("filters must be a list (one filter per group but the fallback); "
                        "wrap a single filter in a list")
    filters = list(filters)
    labels = check_labels(labels, len(filters))
    rules = tuple(as_rule(f).with_label(label) for f, label in zip(filters, labels))
    table = ParameterTable.from_tree(parameters)
    n = len(table)
    masks = np.zeros((len(rules), n), dtype=bool)
    winners = np.full(n, len(rules), dtype=np.intp)
    open_rows = np.ones(n, dtype=bool)
    for g, r in enumerate(rules):
        try:
            masks[g] = cached_select(r, table)
        except RuleError:
            # MLX never asks rule g about parameters an earlier rule took;
            # fail only if the rule also fails on what is left.
            left = np.flatnonzero(open_rows)
            masks[g, left] = r.select(table, left)
        taken = masks[g] & open_rows
        winners[taken] = g
        open_rows &= ~taken
    return Assignment(table, rules, labels, masks, winners)


class Assignment:
    """The result of :func:`assign`: which group each parameter goes to, and why.

    Attributes:
        table (ParameterTable): The parameters, flatten order.
        rules (tuple[Rule | None, ...]): One per group, labelled; None for the fallback.
        group_labels (tuple[str, ...]): Partition order, fallback last.
        masks (numpy.ndarray): ``(len(rules) - 1, len(table))`` read-only bools:
            rule i matched parameter j. A rule is only asked about parameters
            earlier rules left when asking it about the others fails (as MLX
            would never ask): those entries are False.
        winners (numpy.ndarray): Group index of each parameter (read-only).

    Example:
        >>> import mlx.nn as nn
        >>> a = assign(nn.Linear(3, 2), ["ndim == 1"], ["adam", "sgd"])
        >>> a.paths_of("sgd")
        ('weight',)
    """

    def __init__(self, table: ParameterTable, rules, group_labels, masks: np.ndarray, winners: np.ndarray):
        self.table = table
        self.rules: tuple[Rule | None, ...] = tuple(rules) + (None,)
        self.group_labels: tuple[str, ...] = tuple(group_labels)
        self.masks = masks
        self.masks.setflags(write=False)
        self.winners = winners
        self.winners.setflags(write=False)

    @cached_property
    def labels(self) -> dict[str, str]:
        """path -> group label, flatten order."""
        names = self.group_labels
        return {p: names[g] for p, g in zip(self.table.paths, self.winners.tolist())}

    @cached_property
    def group_index(self) -> dict[str, int]:
        """path -> index of its group in ``group_labels``."""
        return dict(zip(self.table.paths, self.winners.tolist()))

    @cached_property
    def matched(self) -> dict[str, tuple[str, ...]]:
        """path -> labels of every rule that matched it, in order (empty: fallback only)."""
        names = self.group_labels
        return {p: tuple(names[g] for g in np.flatnonzero(col).tolist())
                for p, col in zip(self.table.paths, self.masks.T)}

    def paths_of(self, label: str) -> tuple[str, ...]:
        """Paths routed to the group ``label``, flatten order."""
        g = self._group(label)
        paths = self.table.paths
        return tuple(paths[i] for i in np.flatnonzero(self.winners == g).tolist())

    def _group(self, label: str) -> int:
        try:
            return self.group_labels.index(label)
        except ValueError:
            raise KeyError(f"no group {label!r}; the groups are {list(self.group_labels)}") from None

    def rule_text(self, group: int) -> str:
        """Description of group ``group``'s rule, ``(fallback)`` for the last group."""
        r = self.rules[group]
        return "(fallback)" if r is None else r.describe()

    def to_frame(self) -> pd.DataFrame:
        """One row per parameter: path, module, name, group, group_index, rule,
        also_matched, shape, ndim, dtype, size, module_class (``rule`` is None for
        the fallback; ``module_class`` is None without the model)."""
        return parameter_frame(self)

    def summary(self) -> pd.DataFrame:
        """Per group (partition order): ``count``, total ``size``, ``share`` of all
        values and the ``rule``; shown with shares in percent and rules whole.

        Example:
            >>> import mlx.nn as nn
            >>> assign(nn.Linear(3, 2), ["ndim == 2"], ["muon", "adamw"]).summary()
                   count  size  share        rule
            group
            muon       1     6  75.0%   ndim == 2
            adamw      1     2  25.0%  (fallback)
        """
        return group_summary(self)

    @cached_property
    def diagnostics(self) -> Diagnostics:
        """Warnings (dead, shadowed and overlapping rules, empty groups, near misses) and
        what only the fallback caught."""
        texts = {self.group_labels[g]: self.rule_text(g) for g in range(len(self.group_labels))}
        return diagnose(self.table.paths, self.masks, self.winners, self.group_labels, texts,
                        self.table, self.rules[:-1])

    def check(self, allow_fallback: bool = True, allow_overlap: bool = True,
              allow_near_misses: bool = True) -> "Assignment":
        """Raise :class:`CoverageError` listing every problem; return self when none.

        Dead and shadowed rules always fail; parameters only the fallback
        caught fail unless ``allow_fallback``; overlaps fail unless
        ``allow_overlap``; near misses fail unless ``allow_near_misses``,
        and are otherwise reported by a :class:`NearMissWarning`.

        Example:
            >>> import mlx.nn as nn
            >>> _ = assign(nn.Linear(3, 2), ["ndim == 2"]).check()
        """
        diagnostics = self.diagnostics
        problems = diagnostics.problems(allow_fallback, allow_overlap, allow_near_misses)
        if problems:
            raise CoverageError(problems, diagnostics)
        if diagnostics.near_misses:
            listed = "; ".join(f"{m.path} ({m.detail}) like {m.like}, which {m.label!r} took"
                               for m in diagnostics.near_misses[:5])
            more = len(diagnostics.near_misses) - 5
            warnings.warn(f"{len(diagnostics.near_misses)} near miss"
                          f"{'es' * (len(diagnostics.near_misses) != 1)}: the fallback "
                          f"{diagnostics.fallback_label!r} took {listed}"
                          + (f"; and {more} more" if more > 0 else "")
                          + " (check(allow_near_misses=False) makes them an error)",
                          NearMissWarning, stacklevel=2)
        return self

    def diff(self, other: "Assignment") -> Moves:
        """Parameters whose group label differs in ``other`` (absent on one side: None).

        Returns:
            Moves: A list of :class:`Move`, printed grouped by direction.

        Example:
            >>> import mlx.nn as nn
            >>> model = nn.Linear(3, 2)
            >>> assign(model, ["ndim == 2"], ["a", "b"]).diff(assign(model, ["ndim == 1"], ["a", "b"]))
            2 parameters move:
              a -> b (1): weight
              b -> a (1): bias
        """
        mine, theirs = self.labels, other.labels
        moves = [Move(p, g, theirs.get(p)) for p, g in mine.items() if theirs.get(p) != g]
        moves += [Move(p, None, g) for p, g in theirs.items() if p not in mine]
        return Moves(moves)

    def reassign(self, filters: Sequence[Any], labels: Sequence[str] | None = None) -> "Assignment":
        """Assign the same parameters with other filters, reusing the flattened table
        and every unchanged rule's cached selection (the rule editor's fast path).

        Args:
            filters (list): As for :func:`assign`.
            labels (list[str], optional): Default: this assignment's labels when
                the number of groups is unchanged, else ``group_0 .. group_N``.

        Example:
            >>> import mlx.nn as nn
            >>> a = assign(nn.Linear(3, 2), ["ndim == 2"], ["muon", "adamw"])
            >>> a.reassign(["ndim == 1"]).labels
            {'weight': 'adamw', 'bias': 'muon'}
        """
        if labels is None and len(filters) + 1 == len(self.group_labels):
            labels = self.group_labels
        return assign(self.table, filters, labels)

    def text(self, width: int | None = DEFAULT_WIDTH) -> str:
        """The assignment as aligned text, grouped by module (exact and stable), no line
        wider than ``width`` columns (``None``: no limit).

        Example:
            >>> import mlx.nn as nn
            >>> assign(nn.Linear(3, 2), ["ndim == 2"], ["muon", "adamw"]).text().splitlines()[1]
            'weight     [2, 3]  float32     6  muon   ndim == 2'
        """
        return format_assignment(self, width=width)

    def __str__(self) -> str:
        return format_assignment(self)

    def __repr__(self) -> str:
        return format_assignment(self, max_rows=40)

    def _repr_html_(self) -> str | None:
        return html_for("assignment", self)
