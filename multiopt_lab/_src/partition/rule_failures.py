"""Assign with rules that fail on some parameters: the rest is still routed, the failures kept.

A rule such as ``shape[1] == 8`` works until a 1-D parameter reaches it
(the biases are unfrozen): then :func:`~multiopt_lab.assign`
raises, as MLX's ``MultiOptimizer`` would at its next update. That is right
for an update, but whoever must *replace* the failing rule (a repartition,
the rule editor opening on the optimizer) still needs to know where every
other parameter is. :func:`assign_despite_failures` gives it: a rule is
taken as not matching the parameters it fails on (they go on to the next
rules, as if it had said False), and each failure is returned with its rule
and path. Failing rows are found by halving the rows a bulk evaluation
fails on, so a few failures among many parameters cost a few bulk
evaluations, not one per parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Sequence

import numpy as np

from multiopt_lab._src.partition.assignment import Assignment
from multiopt_lab._src.partition.labels import check_labels
from multiopt_lab._src.partition.table import ParameterTable
from multiopt_lab._src.rules import Rule, RuleError, as_rule
from multiopt_lab._src.rules.cache import cached_select

__all__ = ["RuleFailure", "assign_despite_failures", "failure_summary"]


@dataclass(frozen=True)
class RuleFailure:
    """A rule that failed on a parameter.

    Attributes:
        label (str): The group whose rule failed.
        path (str): The parameter it failed on.
        error (RuleError): What it said (with the rule text and the column).
    """

    label: str
    path: str
    error: RuleError


def assign_despite_failures(parameters: Any, filters: Sequence[Any],
                            labels: Sequence[str] | None = None, *,
                            optimizers: Sequence[Any] | None = None
                            ) -> tuple[Assignment, tuple[RuleFailure, ...]]:
    """:func:`~multiopt_lab.assign`, except that a rule failing on a
    parameter is taken as not matching it; returns the assignment and the failures.

    Without failures the assignment equals ``assign``'s. A rule that does not
    parse, or fails whatever the parameter (``module == ...`` on a bare
    parameter dict), still raises: it has no result on any parameter.

    Args:
        parameters: A parameter tree, an ``nn.Module`` or a ``ParameterTable``.
        filters (list): One per group but the last.
        labels (list[str], optional): As for ``assign``.
        optimizers (list, optional): As for ``assign``: the findings then check
            what each group's optimizer expects of its parameters.

    Returns:
        tuple: ``(Assignment, (RuleFailure, ...))``, failures in rule order, then path order.
    """
    filters = list(filters)
    labels = check_labels(labels, len(filters))
    rules = tuple(as_rule(f).with_label(label) for f, label in zip(filters, labels))
    table = ParameterTable.from_tree(parameters)
    n = len(table)
    masks = np.zeros((len(rules), n), dtype=bool)
    winners = np.full(n, len(rules), dtype=np.intp)
    open_rows = np.ones(n, dtype=bool)
    failures: list[RuleFailure] = []
    for g, rule in enumerate(rules):
        try:
            masks[g] = cached_select(rule, table)
        except RuleError as err:
            if getattr(err, "path", None) is None:
                raise  # not about one parameter (a module rule on a bare tree): no result at all
            left = np.flatnonzero(open_rows)
            failed: list[tuple[int, RuleError]] = []
            masks[g, left] = _select_around_failures(rule, table, left, failed)
            failures += [RuleFailure(labels[g], table.paths[i], err) for i, err in sorted(
                failed, key=lambda item: item[0])]
        taken = masks[g] & open_rows
        winners[taken] = g
        open_rows &= ~taken
    return Assignment(table, rules, labels, masks, winners, optimizers), tuple(failures)


def _select_around_failures(rule: Rule, table: ParameterTable, rows: np.ndarray,
                            failed: list[tuple[int, RuleError]]) -> np.ndarray:
    """``rule.select(table, rows)`` with False (and an entry in ``failed``) where it fails."""
    if len(rows) == 0:
        return np.zeros(0, dtype=bool)
    try:
        return np.asarray(rule.select(table, rows), dtype=bool)
    except RuleError as err:
        if len(rows) == 1:
            failed.append((int(rows[0]), err))
            return np.zeros(1, dtype=bool)
    half = len(rows) // 2
    return np.concatenate([_select_around_failures(rule, table, rows[:half], failed),
                           _select_around_failures(rule, table, rows[half:], failed)])


def failure_summary(failures: Sequence[RuleFailure], limit: int = 3) -> str:
    """One line per failing rule: its group, how many parameters, the first error.
    """
    by_label: dict[str, list[RuleFailure]] = {}
    for failure in failures:
        by_label.setdefault(failure.label, []).append(failure)
    lines = []
    for label, found in by_label.items():
        paths = ", ".join(repr(f.path) for f in found[:limit])
        more = f" and {len(found) - limit} more" if len(found) > limit else ""
        noun = "parameter" if len(found) == 1 else "parameters"
        first = str(found[0].error).splitlines()[0]
        lines.append(f"the rule of {label!r} fails on {len(found)} {noun} ({paths}{more}): {first}")
    return "\n".join(lines)
