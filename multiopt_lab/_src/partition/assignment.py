"""Apply ordered rules to a parameter tree exactly as ``MultiOptimizer`` routes it.

First match wins; the last group is the fallback and takes no rule.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable
from functools import cached_property
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple
from collections.abc import Sequence

import numpy as np
import pandas as pd

from multiopt_lab._src.arguments import found
from multiopt_lab._src.partition.arguments import check_parameters
from multiopt_lab._src.partition.frames import group_summary, parameter_frame
from multiopt_lab._src.partition.labels import check_labels
from multiopt_lab._src.partition.moves import Moves
from multiopt_lab._src.partition.text import format_assignment
from multiopt_lab._src.text_fit import DEFAULT_WIDTH
from multiopt_lab._src.partition.diagnostics import CoverageError, Diagnostics, FindingWarning, diagnose
from multiopt_lab._src.display import html_for
from multiopt_lab._src.rules.cache import cached_select
from multiopt_lab._src.rules import Rule, RuleError, as_rule
from multiopt_lab._src.partition.table import ParameterTable

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


def assign(parameters: Any, filters: Sequence[Any], labels: Sequence[str] | None = None, *,
           optimizers: Sequence[Any] | None = None) -> Assignment:
    """Route every parameter to a group, as ``MultiOptimizer(optimizers, filters)`` would.

    Args:
        parameters: A parameter tree, an ``nn.Module`` (its trainable
            parameters) or a ``ParameterTable``.
        filters (list): One per group but the last: rule strings, ``Rule``s or
            callables ``(path, array) -> bool``, mixed freely.
        labels (list[str], optional): Unique group names, ``len(filters) + 1``
            of them, the fallback last. Default: ``group_0 .. group_N``.
        optimizers (list[Optimizer], optional): One per group, for the
            findings to check what each expects of its parameters (Muon
            below 2-D...). ``MultiOptimizer.assign`` passes its own.
            Default: ``None`` (contracts not checked).

    Raises:
        RuleError: A rule does not parse, or fails on a parameter it is asked
            about (MLX asks rule i only about parameters rules 0..i-1 left).
        ValueError: ``optimizers`` is not one per group.

    Example:
        >>> import mlx.nn as nn
        >>> assign(nn.Linear(3, 2), ["ndim == 2"]).labels
        {'weight': 'group_0', 'bias': 'group_1'}
    """
    if isinstance(filters, (str, Rule)) or callable(filters):
        raise TypeError("filters must be a list (one filter per group but the fallback); "
                        "wrap a single filter in a list")
    if not isinstance(filters, Iterable) or isinstance(filters, (bytes, Mapping)):
        raise TypeError(f"assign(): filters must be a list of rules (one per group but the "
                        f"fallback), found {found(filters)}")
    check_parameters(parameters, "assign()")
    filters = list(filters)
    labels = check_labels(labels, len(filters))
    if optimizers is not None:
        optimizers = tuple(optimizers)
        if len(optimizers) != len(labels):
            raise ValueError(f"expected one optimizer per group ({len(labels)}: {list(labels)}), "
                             f"found {len(optimizers)}")
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
    return Assignment(table, rules, labels, masks, winners, optimizers)


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
        optimizers (tuple[Optimizer, ...] | None): One per group, when known.

    Example:
        >>> import mlx.nn as nn
        >>> a = assign(nn.Linear(3, 2), ["ndim == 1"], ["adam", "sgd"])
        >>> a.paths_of("sgd")
        ('weight',)
    """

    def __init__(self, table: ParameterTable, rules, group_labels, masks: np.ndarray, winners: np.ndarray,
                 optimizers=None):
        self.table = table
        self.optimizers = None if optimizers is None else tuple(optimizers)
        self.rules: tuple[Rule | None, ...] = tuple(rules) + (None,)
        self.group_labels: tuple[str, ...] = tuple(group_labels)
        self.masks = masks
        self.masks.setflags(write=False)
        self.winners = winners
        self.winners.setflags(write=False)
        self._memo: dict = {}

    def memo(self, key: Hashable, compute: Callable[[Assignment], Any]) -> Any:
        """``compute(self)``, computed once for this assignment and kept with it.

        What several surfaces draw from one assignment (the tree, the legend, the
        editor's warnings, ``check()``) goes through here, so that a keystroke in
        the rule editor computes each thing once, however many surfaces show it:
        per-parameter flags, the tree's fold signatures, the legend's counts.
        :attr:`diagnostics` is kept the same way. An assignment never changes, so
        nothing kept here goes stale.

        Args:
            key: Names the computation (``"render.param_infos"``); one key, one meaning.
            compute: Called with the assignment, once per key (two threads may race
                to compute it; the first result is kept and returned to both).

        Example:
            >>> import mlx.nn as nn
            >>> a = assign(nn.Linear(3, 2), ["ndim == 2"])
            >>> a.memo("sizes", lambda a: a.table.sizes)
            (6, 2)
        """
        try:
            return self._memo[key]
        except KeyError:
            pass
        # dict.setdefault is atomic: a thread that lost the race gets the kept value.
        return self._memo.setdefault(key, compute(self))

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
        """One row per parameter: path, module_path, name, group, group_index, rule,
        also_matched, shape, ndim, dtype, size, module (``rule`` is None for the
        fallback; ``module`` is the class of the module holding the parameter, as
        in rules, None without the model; ``module_path`` is that module's path)."""
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
        """The findings (computed once): dead and shadowed rules, near misses, each group's
        optimizer contract (when the optimizers are known), overlaps, and what only the
        fallback took."""
        texts = {self.group_labels[g]: self.rule_text(g) for g in range(len(self.group_labels))}
        return diagnose(self.table, self.masks, self.winners, self.group_labels, texts,
                        self.rules[:-1], self.optimizers)

    def check(self, allow_fallback: bool = True, allow_overlap: bool = True,
              allow_near_misses: bool = True, *, allow_warnings: bool = True,
              allow_notes: bool = True) -> Assignment:
        """Raise :class:`CoverageError` listing every problem; return self when none.

        Findings of severity error (a dead or shadowed rule, Muon on a
        parameter below 2-D) always fail. The settings add more: warnings,
        notes, or one kind of each (overlaps are notes, near misses
        warnings); parameters only the fallback caught fail unless
        ``allow_fallback``. Each warning that passes is reported by a
        :class:`FindingWarning`.

        Args:
            allow_fallback (bool, optional): Accept parameters no rule matched. Default: ``True``.
            allow_overlap (bool, optional): Accept parameters several rules match. Default: ``True``.
            allow_near_misses (bool, optional): Accept near misses. Default: ``True``.
            allow_warnings (bool, optional): Accept every warning. Default: ``True``.
            allow_notes (bool, optional): Accept every note. Default: ``True``.

        Example:
            >>> import mlx.nn as nn
            >>> _ = assign(nn.Linear(3, 2), ["ndim == 2"]).check()
        """
        diagnostics = self.diagnostics
        failing = diagnostics.failing(allow_fallback, allow_overlap, allow_near_misses,
                                      allow_warnings, allow_notes)
        if failing:
            raise CoverageError([f for f, _ in failing], diagnostics, [why for _, why in failing])
        for finding in diagnostics.warnings:
            warnings.warn(FindingWarning(finding), stacklevel=2)
        return self

    def diff(self, other: Assignment) -> Moves:
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
        if self.table.paths is other.table.paths or self.table.paths == other.table.paths:
            return Moves(self._moves_on_same_paths(other))
        mine, theirs = self.labels, other.labels
        moves = [Move(p, g, theirs.get(p)) for p, g in mine.items() if theirs.get(p) != g]
        moves += [Move(p, None, g) for p, g in theirs.items() if p not in mine]
        return Moves(moves)

    def _moves_on_same_paths(self, other: Assignment) -> list[Move]:
        """:meth:`diff` between two assignments of the same paths, compared as arrays
        (the rule editor diffs on every keystroke)."""
        rows = self.table.distinct_rows
        names = list(dict.fromkeys(self.group_labels + other.group_labels))
        ids = {label: i for i, label in enumerate(names)}
        mine = np.array([ids[label] for label in self.group_labels], dtype=np.intp)[self.winners[rows]]
        theirs = np.array([ids[label] for label in other.group_labels], dtype=np.intp)[other.winners[rows]]
        paths = self.table.paths
        return [Move(paths[r], names[a], names[b]) for r, a, b in
                zip(rows[mine != theirs].tolist(), mine[mine != theirs].tolist(),
                    theirs[mine != theirs].tolist())]

    def reassign(self, filters: Sequence[Any], labels: Sequence[str] | None = None) -> Assignment:
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
        same_groups = len(filters) + 1 == len(self.group_labels)
        if labels is None and same_groups:
            labels = self.group_labels
        return assign(self.table, filters, labels, optimizers=self.optimizers if same_groups else None)

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
