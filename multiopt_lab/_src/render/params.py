"""Per-parameter facts read off an assignment, shared by every renderer.

Each parameter carries the findings of its assignment that concern it
(``findings``), drawn from ``assignment.diagnostics``; its flags mark the
likely mistakes among them (errors and warnings: a near miss, Muon on a
vector...), in words (``"near miss"``). Notes (weight decay on a
norm, a parameter several rules matched) are not flags. A parameter the
fallback took because no rule matched it carries no flag: that is what the
fallback is for, and its rule reads ``(fallback)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["ParamInfo", "ParamInfos", "Flagged", "param_infos", "flagged_params", "group_totals",
           "per_assignment", "rule_display", "flag_of"]

#: Flag for a parameter the fallback took that looks like what a rule took.


def flag_of(finding) -> str:
    """The flag a finding puts on its rows: its kind in words (``"near miss"``).
    """
    return finding.kind.replace("_", " ")


@dataclass(frozen=True, slots=True)
class ParamInfo:
    """What the tree shows about one parameter.

    Attributes:
        path (str): Dotted path (``layers.0.attn.q.weight``).
        shape (tuple[int, ...]): Array shape.
        dtype (str): Array dtype (``float32``).
        size (int): Number of elements.
        group (int): Index of its group in the partition.
        label (str): Its group's label.
        rule (str): The rule that matched, as shown (``(fallback)`` for the fallback).
        also_matched (tuple[str, ...]): Labels of later rules that matched too.
        flags (tuple[str, ...]): Its likely mistakes (findings of severity error
            or warning), one word each (:func:`flag_of`).
        nearly (str): For a near miss, the label of the rule it nearly matched; else ``""``.
        like (str): For a near miss, the parameter that rule took which it resembles,
            with its module class and shape; else ``""``.
        modules (tuple[str, ...] | None): Class names from the model down to the
            module holding it (None when the model was not at hand).
        findings (tuple[Finding, ...]): Every finding that concerns it, notes included.
    """

    path: str
    shape: tuple[int, ...]
    dtype: str
    size: int
    group: int
    label: str
    rule: str
    also_matched: tuple[str, ...]
    flags: tuple[str, ...]
    nearly: str = ""
    like: str = ""
    modules: tuple[str, ...] | None = None
    findings: tuple = ()


def rule_display(rule) -> str:
    """How a group's rule is shown: its expression, ``<callable name>``, or ``(fallback)``.

    Args:
        rule (Rule | None): A rule from ``Assignment.rules``; ``None`` is the fallback.
    """
    if rule is None:
        return "(fallback)"
    return rule.describe()


@dataclass(frozen=True, slots=True)
class Flagged:
    """What a flagged, overlapping or nearly matched parameter carries beyond its group.

    Attributes:
        flags (tuple[str, ...]): Its likely mistakes (findings of severity error
            or warning), one word each (:func:`flag_of`); empty for notes only.
        also_matched (tuple[str, ...]): Labels of later rules that matched too.
        nearly (str): For a near miss, the label of the rule it nearly matched.
        like (str): For a near miss, the parameter it resembles (class and shape).
        findings (tuple[Finding, ...]): Every finding that concerns it, notes included.
    """

    flags: tuple[str, ...]
    also_matched: tuple[str, ...] = ()
    nearly: str = ""
    like: str = ""


def flagged_params(assignment) -> dict[str, Flagged]:
    """path -> :class:`Flagged`, for the parameters an error or a warning concerns, or
    several rules matched; computed once per assignment and read by every surface (the tree's rows and
    folds, the legend, the details pane).

    This is where a per-parameter finding becomes a flag on its row.
    """
    return per_assignment(assignment, "render.flagged_params", _flagged_params)


def _flagged_params(assignment) -> dict[str, Flagged]:
    diagnostics = assignment.diagnostics
    near = {miss.path: miss for miss in diagnostics.near_misses}  # the last of a path is shown
    # overlaps: path -> labels of every rule that matched it, the winner first.
    overlaps = diagnostics.overlaps
    # Only errors and warnings flag a row; a note (weight decay on every norm of a
    # 50,000-array model) rides along in the details, looked up when a row is shown.
    flags: dict[str, list[str]] = {}
    for finding in diagnostics.findings:
        if finding.flagged:
            flag = flag_of(finding)
            for path in finding.paths:
                flags.setdefault(path, []).append(flag)
    found: dict[str, Flagged] = {}
    for path in dict.fromkeys([*flags, *near, *overlaps]):
        miss = near.get(path)
        found[path] = Flagged(
            tuple(flags.get(path, ())),
            tuple(overlaps[path][1:]) if path in overlaps else (),
            miss.label if miss is not None else "",
            f"{miss.like} ({miss.like_kind})" if miss is not None else "")
    return found


_UNFLAGGED = Flagged(())


class ParamInfos(Mapping):
    """path -> :class:`ParamInfo` of one assignment, each built when first asked for.

    A folded tree of 50,000 parameters shows a few hundred: only those are built.
    Iterates in parameter order (one entry per distinct path).
    """

    def __init__(self, assignment):
        self._assignment = assignment
        self._table = assignment.table
        self._flags = flagged_params(assignment)
        self._rules = [rule_display(r) for r in assignment.rules]
        self._winners = assignment.winners
        self._built: dict[int, ParamInfo] = {}

    def row(self, row: int) -> ParamInfo:
        """The info of the parameter in table row ``row``."""
        info = self._built.get(row)
        if info is None:
            table = self._table
            path, group = table.paths[row], int(self._winners[row])
            flagged = self._flags.get(path)
            flagged = flagged if flagged is not None else _UNFLAGGED
            info = self._built[row] = ParamInfo(
                path, table.shapes[row], table.dtypes[row], table.sizes[row], group,
                self._assignment.group_labels[group], self._rules[group], flagged.also_matched,
                flagged.flags, flagged.nearly, flagged.like, table.module_chains[row],
                self._assignment.diagnostics.findings_for(path))
        return info

    def __getitem__(self, path: str) -> ParamInfo:
        try:
            row = self._table.index(path)
        except KeyError:
            raise KeyError(path) from None
        return self.row(row)

    def __contains__(self, path: object) -> bool:
        try:
            self._table.index(path)
        except (KeyError, TypeError):
            return False
        return True

    def __iter__(self):
        paths, rows = self._table.paths, self._table.distinct_rows
        return iter(paths) if len(rows) == len(paths) else (paths[i] for i in rows.tolist())

    def __len__(self) -> int:
        return len(self._table.distinct_rows)


def param_infos(assignment) -> ParamInfos:
    """One :class:`ParamInfo` per path, in the assignment's parameter order.

    A mapping computed once per assignment (the tree, the legend and the details pane
    all read it), each entry built on first use.

    Args:
        assignment (Assignment): The assignment to read.
    """
    return per_assignment(assignment, "render.param_infos", ParamInfos)


def group_totals(assignment) -> tuple[list[int], list[int]]:
    """Parameters and elements per group, in partition order (a path repeated in the table
    counted once, as the tree shows it).
    """
    return per_assignment(assignment, "render.group_totals", _group_totals)


def _group_totals(assignment) -> tuple[list[int], list[int]]:
    table = assignment.table
    n_groups = len(assignment.group_labels)
    rows = table.distinct_rows
    winners = np.asarray(assignment.winners, dtype=np.intp)[rows]
    sizes = np.array(table.sizes, dtype=np.int64)[rows] if len(rows) else np.zeros(0, np.int64)
    params = np.bincount(winners, minlength=n_groups)
    elements = np.zeros(n_groups, dtype=np.int64)
    np.add.at(elements, winners, sizes)
    return params.tolist(), elements.tolist()


def per_assignment(assignment, key: str, compute):
    """``assignment.memo(key, compute)``: computed once per assignment and shared by every
    surface; computed each time for an assignment-like object without a memo.
    """
    memo = getattr(assignment, "memo", None)
    return memo(key, compute) if callable(memo) else compute(assignment)
