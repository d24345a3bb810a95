"""What an assignment reveals: warnings about likely mistakes, and what the fallback took.

Warnings (likely mistakes): dead rules (match nothing), shadowed rules
(everything they match was taken earlier), overlaps (several rules match a
parameter; the first wins), empty groups, near misses (the fallback took a
parameter that looks like what a rule took, see
:mod:`multiopt_lab.partition.near_misses`). Information: the parameters only
the fallback caught, which is MLX's design (``check(allow_fallback=False)``
makes them an error).

Example:
    >>> import mlx.core as mx
    >>> from multiopt_lab.partition.assignment import assign
    >>> a = assign({"w": mx.zeros((2, 2)), "b": mx.zeros((2,))}, ["ndim == 3"], ["conv", "adamw"])
    >>> a.diagnostics.dead_rules, a.diagnostics.fallback_only
    (('conv',), ('w', 'b'))
    >>> print(a.diagnostics)
    diagnostics: 1 warning
      ! dead rule 'conv' (ndim == 3): matches no parameter
      fallback 'adamw' took 2 parameters no rule matched:
        w, b
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np

from multiopt_lab.display import html_for
from multiopt_lab.partition.near_misses import NearMiss, block_pattern, find_near_misses
from multiopt_lab.text_fit import DEFAULT_WIDTH, check_width, glue, wrap, wrap_lines

__all__ = ["Diagnostics", "CoverageError", "NearMiss", "NearMissWarning", "diagnose"]

_MAX_LISTED = 50
# The same parameter in this many numbered blocks or more is listed once: layers.*.norm.weight.
_FOLD = 3


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
        for problem in self.problems:  # long lists of paths break between paths
            lines += wrap(problem, DEFAULT_WIDTH, "  - ", "    ")
        super().__init__("\n".join(lines))


class NearMissWarning(UserWarning):
    """``check()`` passed, but the fallback took parameters that look like what a rule took.

    Example:
        >>> issubclass(NearMissWarning, UserWarning)
        True
    """


def _listing(items) -> str:
    items = list(items)
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f", ... and {more:,} more" if more > 0 else "")


def _wrapped(items, indent: str, width: int | None) -> list[str]:
    """Items joined by commas, wrapped between items (an item is never broken)."""
    return wrap(_listing([glue(item) for item in items]), width, indent)


def _folded(items, pattern_of) -> list[tuple[object, int]]:
    """``(item, count)`` in order; an item repeated in ``_FOLD`` or more blocks appears once."""
    items = list(items)
    counts: dict = {}
    for item in items:
        counts[pattern_of(item)] = counts.get(pattern_of(item), 0) + 1
    out, seen = [], set()
    for item in items:
        pattern = pattern_of(item)
        if counts[pattern] < _FOLD:
            out.append((item, 1))
        elif pattern not in seen:
            seen.add(pattern)
            out.append((item, counts[pattern]))
    return out


def _by_block(paths) -> list[str]:
    """Paths, those repeated in every numbered block folded: ``layers.*.norm.weight (in 32 blocks)``."""
    return [path if n == 1 else f"{block_pattern(path)} (in {n:,} blocks)"
            for path, n in _folded(paths, block_pattern)]


def _near_miss_lines(near_misses, indent: str) -> list[str]:
    """Two lines per near miss, those repeated in every block folded into one."""
    def pattern(miss):
        return (block_pattern(miss.path), miss.kind, block_pattern(miss.like), miss.like_kind, miss.label)

    rows = _folded(near_misses, pattern)
    lines = []
    for miss, n in rows[:_MAX_LISTED]:
        path = miss.path if n == 1 else f"{block_pattern(miss.path)} (in {n:,} blocks)"
        like = miss.like if n == 1 else block_pattern(miss.like)
        lines.append(f"{indent}{path}  {miss.kind}")
        lines.append(f"{indent}  like {like}  {miss.like_kind}, which {miss.label!r} took")
    if len(rows) > _MAX_LISTED:
        lines.append(f"{indent}... and {len(rows) - _MAX_LISTED:,} more")
    return lines


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


@dataclass(frozen=True)
class Diagnostics:
    """Findings about one assignment.

    Attributes:
        fallback_only (tuple[str, ...]): Paths no rule matched (the fallback took
            them): information, not a warning.
        overlaps (dict[str, tuple[str, ...]]): Paths several rules matched ->
            the labels of those groups, the winner first.
        dead_rules (tuple[str, ...]): Labels of rules that match nothing.
        shadowed_rules (tuple[str, ...]): Labels of rules that match something,
            all of it taken by earlier rules.
        empty_groups (tuple[str, ...]): Labels of groups with no parameter
            (the fallback included).
        fallback_label (str): The fallback group's label.
        rule_texts (dict[str, str]): Label -> the rule as shown.
        near_misses (tuple[NearMiss, ...]): Parameters the fallback took that
            look like what a rule took.
        hints (dict[str, str]): Label -> a hint about a dead rule (a module
            class the model does not have, and the closest one it has).

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
    near_misses: tuple[NearMiss, ...] = ()
    hints: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_clean(self) -> bool:
        """No warning: no dead, shadowed or overlapping rule, no empty group, no near miss.

        Parameters only the fallback caught do not count: that is what a fallback is for.

        Example:
            >>> Diagnostics(("b",), {}, (), (), (), "adamw").is_clean
            True
        """
        return not self.warnings()

    def warnings(self) -> list[str]:
        """One line per likely mistake, in the order the text form lists them.

        Example:
            >>> Diagnostics((), {}, (), (), ("adamw",), "adamw").warnings()
            ["empty group 'adamw': no parameter goes to it"]
        """
        found = []
        for label in self.dead_rules:
            found.append(f"dead rule {label!r} ({self._rule(label)}): matches no parameter"
                         + self._hint(label))
        for label in self.shadowed_rules:
            found.append(f"shadowed rule {label!r} ({self._rule(label)}): every parameter it "
                         "matches was taken by an earlier rule")
        if self.overlaps:
            found.append(f"{_plural(len(self.overlaps), 'parameter')} matched by several rules "
                         "(the first wins)")
        reported = set(self.dead_rules) | set(self.shadowed_rules)
        for label in self.empty_groups:
            if label not in reported:
                found.append(f"empty group {label!r}: no parameter goes to it")
        if self.near_misses:
            n = len(self.near_misses)
            found.append(f"{n:,} near miss{'es' * (n != 1)}: the fallback {self.fallback_label!r} "
                         "took parameters that look like what a rule took")
        return found

    def problems(self, allow_fallback: bool = True, allow_overlap: bool = True,
                 allow_near_misses: bool = True) -> list[str]:
        """What ``check`` with these settings would complain about, one line each.

        Example:
            >>> Diagnostics(("b",), {}, (), (), (), "adamw").problems(allow_fallback=False)
            ["1 parameter caught by no rule, only by the fallback 'adamw' (allow_fallback=False): b"]
        """
        found = []
        for label in self.dead_rules:
            found.append(f"dead rule {label!r} ({self._rule(label)}) matches no parameter"
                         + self._hint(label))
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
        if self.near_misses and not allow_near_misses:
            n = len(self.near_misses)
            items = [f"{m.path} ({m.detail}; '{m.label}' took {m.like})" for m in self.near_misses]
            found.append(f"{n} near miss{'es' * (n != 1)}: the fallback {self.fallback_label!r} "
                         f"took parameters like ones a rule took (allow_near_misses=False): "
                         f"{_listing(items)}")
        return found

    def _rule(self, label: str) -> str:
        return self.rule_texts.get(label, "?")

    def _hint(self, label: str) -> str:
        hint = self.hints.get(label)
        return f"; {hint}" if hint else ""

    def lines(self, width: int | None = DEFAULT_WIDTH) -> list[str]:
        """The text form, one line each (what ``print`` shows), none wider than ``width``.

        Args:
            width (int | None, optional): Columns; ``None``: no limit. A long
                warning breaks between words, a listing between paths.
                Default: ``100``.

        Example:
            >>> Diagnostics((), {}, (), (), (), "adamw").lines()
            ['diagnostics: no warnings (no dead, shadowed or overlapping rule, no empty group, no near miss)']
        """
        width = check_width(width)
        warnings = self.warnings()
        if warnings:
            lines = [f"diagnostics: {_plural(len(warnings), 'warning')}"]
        else:
            lines = ["diagnostics: no warnings (no dead, shadowed or overlapping rule, "
                     "no empty group, no near miss)"]
        for label in self.dead_rules:
            lines.append(f"  ! dead rule {label!r} ({self._rule(label)}): matches no parameter"
                         + self._hint(label))
        for label in self.shadowed_rules:
            lines.append(f"  ! shadowed rule {label!r} ({self._rule(label)}): every parameter it "
                         "matches was taken by an earlier rule")
        if self.overlaps:
            lines.append(f"  ! {_plural(len(self.overlaps), 'parameter')} matched by several "
                         "rules, the first wins:")
            lines += _wrapped(_by_block(f"{p} ({' > '.join(labels)})" for p, labels in
                                        self.overlaps.items()), "    ", width)
        reported = set(self.dead_rules) | set(self.shadowed_rules)
        lines += [f"  ! empty group {label!r}" for label in self.empty_groups if label not in reported]
        if self.near_misses:
            n = len(self.near_misses)
            lines.append(f"  ! {n} near miss{'es' * (n != 1)}: the fallback {self.fallback_label!r} "
                         "took parameters like ones a rule took:")
            lines += _near_miss_lines(self.near_misses, "    ")
        if self.fallback_only:
            lines.append(f"  fallback {self.fallback_label!r} took "
                         f"{_plural(len(self.fallback_only), 'parameter')} no rule matched:")
            lines += _wrapped(_by_block(self.fallback_only), "    ", width)
        return wrap_lines(lines, width)

    def text(self, width: int | None = DEFAULT_WIDTH) -> str:
        """The text form (see :meth:`lines`) as one string.

        Example:
            >>> print(Diagnostics((), {}, ("conv",), (), ("conv",), "adamw", {"conv": "ndim == 4"}).text(width=30))
            diagnostics: 1 warning
              ! dead rule 'conv' (ndim ==
                4): matches no parameter
        """
        return "\n".join(self.lines(width))

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str | None:
        return html_for("diagnostics", self)


def _module_hints(rules, labels, dead, table) -> dict[str, str]:
    """For dead rules naming module classes the model lacks: the closest class it has."""
    if table is None or not getattr(table, "has_modules", False):
        return {}
    known = sorted({name for chain in table.chains for name in chain})
    hints = {}
    for label, rule in zip(labels, rules):
        if label not in dead:
            continue
        missing = sorted(getattr(rule, "module_literals", frozenset()) - set(known))
        if not missing:
            continue
        parts = []
        for name in missing:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            parts.append(f"no module of class {name!r} in this model"
                         + (f"; did you mean {close[0]!r}?" if close else ""))
        if not any("did you mean" in p for p in parts):
            parts.append(f"its classes are {', '.join(known)}")
        hints[label] = "; ".join(parts)
    return hints


def diagnose(paths, masks: np.ndarray, winners: np.ndarray, labels, rule_texts,
             table=None, rules=None) -> Diagnostics:
    """Compute :class:`Diagnostics` from per-rule match masks.

    Args:
        paths (Sequence[str]): Parameter paths, one per column of ``masks``.
        masks (numpy.ndarray): ``(n_rules, n_paths)`` bools: rule i matched path j.
        winners (numpy.ndarray): Group index of each path (``n_rules`` = fallback).
        labels (Sequence[str]): Group labels, fallback last.
        rule_texts (dict[str, str]): Label -> rule description, for messages.
        table (ParameterTable, optional): The parameters, for near misses and
            hints about module classes. Default: ``None`` (neither).
        rules (Sequence[Rule], optional): The rules, with ``table``. Default: ``None``.

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
    near = find_near_misses(table, rules, winners, labels) if table is not None and rules else ()
    hints = _module_hints(rules or (), labels, set(dead), table)
    return Diagnostics(fallback_only, overlaps, tuple(dead), tuple(shadowed), empty,
                       labels[-1], dict(rule_texts), near, hints)
