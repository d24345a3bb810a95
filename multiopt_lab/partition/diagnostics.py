"""What an assignment reveals: uncovered parameters, overlaps, dead and shadowed rules.

Example:
    >>> import mlx.core as mx
    >>> from multiopt_lab.partition.assignment import assign
    >>> a = assign({"w": mx.zeros((2, 2)), "b": mx.zeros((2,))}, ["ndim == 3"], ["conv", "adamw"])
    >>> a.diagnostics.dead_rules, a.diagnostics.fallback_only
    (('conv',), ('w', 'b'))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Diagnostics", "CoverageError", "diagnose"]

_MAX_LISTED = 50


class CoverageError(AssertionError):
    """``Assignment.check`` found problems; the message lists every one.

    An ``AssertionError`` because ``check()`` is an assertion about the
    user's partition, meant for their test suite (pytest reports it as a
    failed check, like ``assert``); the arguments of ``check`` were fine.

    Attributes:
        problems (tuple[str, ...]): One line per problem.
        diagnostics (Diagnostics): Everything that was found.

    Example:
        >>> str(CoverageError(("dead rule 'x'",), None))
        "1 problem with the parameter assignment:\\n  - dead rule 'x'"
    """

    def __init__(self, problems, diagnostics):
        self.problems = tuple(problems)
        self.diagnostics = diagnostics
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"{count} {noun} with the parameter assignment:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def _listing(paths) -> str:
    shown = ", ".join(paths[:_MAX_LISTED])
    more = len(paths) - _MAX_LISTED
    return shown + (f", ... and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class Diagnostics:
    """Findings about one assignment.

    Attributes:
        fallback_only (tuple[str, ...]): Paths no rule matched (the fallback took them).
        overlaps (dict[str, tuple[str, ...]]): Paths several rules matched ->
            the labels of those groups, the winner first.
        dead_rules (tuple[str, ...]): Labels of rules that match nothing.
        shadowed_rules (tuple[str, ...]): Labels of rules that match something,
            all of it taken by earlier rules.
        empty_groups (tuple[str, ...]): Labels of groups with no parameter
            (the fallback included).
        fallback_label (str): The fallback group's label.

    Example:
        >>> Diagnostics((), {}, (), (), (), "adamw").is_clean
        True
    """

    fallback_only: tuple[str, ...]
    overlaps: dict[str, tuple[str, ...]]
    dead_rules: tuple[str, ...]
    shadowed_rules: tuple[str, ...]
    empty_groups: tuple[str, ...]
    fallback_label: str
    rule_texts: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_clean(self) -> bool:
        """No uncovered parameter, no overlap, no dead or shadowed rule."""
        return not (self.fallback_only or self.overlaps or self.dead_rules or self.shadowed_rules)

    def problems(self, allow_fallback: bool = True, allow_overlap: bool = True) -> list[str]:
        """What ``check`` with these settings would complain about, one line each.

        Example:
            >>> Diagnostics(("b",), {}, (), (), (), "adamw").problems(allow_fallback=False)
            ["1 parameter caught by no rule, only by the fallback 'adamw' (allow_fallback=False): b"]
        """
        found = []
        for label in self.dead_rules:
            found.append(f"dead rule {label!r} ({self._rule(label)}) matches no parameter")
        for label in self.shadowed_rules:
            found.append(f"rule {label!r} ({self._rule(label)}) is shadowed: every parameter "
                         "it matches was taken by an earlier rule")
        if self.fallback_only and not allow_fallback:
            n = len(self.fallback_only)
            found.append(f"{n} parameter{'s' * (n != 1)} caught by no rule, only by the fallback "
                         f"{self.fallback_label!r} (allow_fallback=False): "
                         f"{_listing(self.fallback_only)}")
        if self.overlaps and not allow_overlap:
            n = len(self.overlaps)
            items = [f"{p} ({' > '.join(labels)})" for p, labels in self.overlaps.items()]
            found.append(f"{n} parameter{'s' * (n != 1)} matched by more than one rule, the "
                         f"first wins (allow_overlap=False): {_listing(items)}")
        return found

    def _rule(self, label: str) -> str:
        return self.rule_texts.get(label, "?")

    def __str__(self) -> str:
        if self.is_clean:
            return "diagnostics: clean (every parameter caught by exactly one rule; no dead or shadowed rule)"
        lines = ["diagnostics:"]
        lines += [f"  dead rule: {label} ({self._rule(label)})" for label in self.dead_rules]
        lines += [f"  shadowed rule: {label} ({self._rule(label)})" for label in self.shadowed_rules]
        if self.fallback_only:
            lines.append(f"  fallback only ({self.fallback_label}, {len(self.fallback_only)}): "
                         f"{_listing(self.fallback_only)}")
        if self.overlaps:
            items = [f"{p} ({' > '.join(labels)})" for p, labels in self.overlaps.items()]
            lines.append(f"  overlaps ({len(items)}): {_listing(items)}")
        if self.empty_groups:
            lines.append(f"  empty groups: {', '.join(self.empty_groups)}")
        return "\n".join(lines)


def diagnose(paths, masks: np.ndarray, winners: np.ndarray, labels, rule_texts) -> Diagnostics:
    """Compute :class:`Diagnostics` from per-rule match masks.

    Args:
        paths (Sequence[str]): Parameter paths, one per column of ``masks``.
        masks (numpy.ndarray): ``(n_rules, n_paths)`` bools: rule i matched path j.
        winners (numpy.ndarray): Group index of each path (``n_rules`` = fallback).
        labels (Sequence[str]): Group labels, fallback last.
        rule_texts (dict[str, str]): Label -> rule description, for messages.

    Example:
        >>> m = np.array([[True, False]])
        >>> diagnose(["w", "b"], m, np.array([0, 1]), ["muon", "adamw"], {}).fallback_only
        ('b',)
    """
    n_rules = len(labels) - 1
    fallback = winners == n_rules
    fallback_only = tuple(paths[i] for i in np.flatnonzero(fallback).tolist())
    overlaps = {}
    if n_rules > 1:
        for i in np.flatnonzero(masks.sum(axis=0) > 1).tolist():
            overlaps[paths[i]] = tuple(labels[g] for g in np.flatnonzero(masks[:, i]).tolist())
    counts = np.bincount(winners, minlength=len(labels)) if len(winners) else np.zeros(len(labels), int)
    dead, shadowed = [], []
    for g in range(n_rules):
        if not masks[g].any():
            dead.append(labels[g])
        elif counts[g] == 0:
            shadowed.append(labels[g])
    empty = tuple(labels[g] for g in range(len(labels)) if counts[g] == 0)
    return Diagnostics(fallback_only, overlaps, tuple(dead), tuple(shadowed), empty,
                       labels[-1], dict(rule_texts))
