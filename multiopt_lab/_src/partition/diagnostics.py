"""What an assignment reveals: one list of findings, computed once per assignment.

:func:`diagnose` reads the assignment (which rule matched which parameter,
which group won), the model (module classes, shapes, where each parameter
sits) and, when known, each group's optimizer, and returns
:class:`Diagnostics`: the :class:`~multiopt_lab.Finding` s
(dead and shadowed rules, near misses, optimizer contracts broken,
overlaps, an empty fallback, weight decay on norms) and what only the
fallback took (information: that is MLX's design). Nothing depends on how a
rule is written: two partitions that give the same assignment give the same
findings. Every surface (tree, legend, editor, ``check()``, the command
line, warnings at training time) draws these findings; the words are in
:mod:`multiopt_lab._src.partition.findings`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from multiopt_lab._src.display import html_for
from multiopt_lab._src.partition import findings as words
from multiopt_lab._src.partition.contracts import contract_of, weight_decay_of
from multiopt_lab._src.partition.findings import (KINDS, SEVERITIES, Finding, FindingWarning,
                                             counted, wrapped)
from multiopt_lab._src.partition.near_misses import NearMiss, describe_row, find_near_misses
from multiopt_lab._src.partition.roles import roles_of
from multiopt_lab._src.rules.text import quote_pattern
from multiopt_lab._src.text_fit import DEFAULT_WIDTH, check_width, clip, wrap_lines

__all__ = ["Diagnostics", "CoverageError", "Finding", "FindingWarning", "NearMiss", "diagnose"]


class CoverageError(AssertionError):
    """``Assignment.check`` found problems; the message lists every one.

    An ``AssertionError`` because ``check()`` is an assertion about the
    user's partition, meant for their test suite (pytest reports it as a
    failed check, like ``assert``); the arguments of ``check`` were fine.

    Attributes:
        findings (tuple[Finding, ...]): The findings that failed the check.
        reasons (tuple[str, ...]): For each, why it fails: ``"error"``, or the
            setting that made it fail (``"allow_overlap=False"``).
        diagnostics (Diagnostics): Everything that was found.

    Example:
        >>> from multiopt_lab._src.partition import findings
        >>> print(CoverageError([findings.dead_rule("x", "ndim == 3")], None))
        1 problem with the parameter assignment:
          - error: rule 'x' (ndim == 3) matches no parameter
              fix: compare it with the parameters' paths, shapes and module classes (assignment.to_frame()), or remove the group
    """

    def __init__(self, findings, diagnostics, reasons=None):
        self.findings = tuple(findings)
        self.reasons = tuple(reasons) if reasons is not None else ("error",) * len(self.findings)
        self.diagnostics = diagnostics
        lines = [f"{counted(len(self.findings), 'problem')} with the parameter assignment:"]
        for finding, reason in zip(self.findings, self.reasons):
            because = reason if reason != finding.severity else ""  # a setting made it fail
            first, *rest = finding.text(max_paths=20, because=because).splitlines()
            lines.append(f"  - {first}")
            lines += [f"    {line}" for line in rest]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Diagnostics:
    """The findings about one assignment (see the module docstring).

    Attributes:
        findings (tuple[Finding, ...]): Errors, then warnings, then notes.
        fallback_label (str): The fallback group's label.
        fallback_only (tuple[str, ...]): Paths no rule matched (the fallback took
            them): information, not a finding.
        overlaps (dict[str, tuple[str, ...]]): Paths several rules matched ->
            the labels of those groups, the winner first.
        near_misses (tuple[NearMiss, ...]): Per parameter, the details of the
            near misses: which rule it nearly matched, and what it looks like.
        contracts_checked (bool): The optimizers were known, and their
            contracts checked.

    Example:
        >>> Diagnostics((), "adamw").is_clean
        True
    """

    findings: tuple[Finding, ...]
    fallback_label: str
    fallback_only: tuple[str, ...] = ()
    overlaps: dict = field(default_factory=dict, compare=False)
    near_misses: tuple[NearMiss, ...] = ()
    contracts_checked: bool = False

    def _of(self, severity: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == severity)

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The findings of severity ``"error"``."""
        return self._of("error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """The findings of severity ``"warning"``."""
        return self._of("warning")

    @property
    def notes(self) -> tuple[Finding, ...]:
        """The findings of severity ``"note"``."""
        return self._of("note")

    @property
    def is_clean(self) -> bool:
        """No error and no warning (notes are information).

        Example:
            >>> from multiopt_lab._src.partition import findings
            >>> Diagnostics((findings.overlap("a", ["w"], ["b"]),), "b").is_clean
            True
        """
        return not any(f.flagged for f in self.findings)

    def of_kind(self, kind: str) -> tuple[Finding, ...]:
        """The findings of one kind (``"near_miss"``...).

        Example:
            >>> Diagnostics((), "adamw").of_kind("dead_rule")
            ()
        """
        if kind not in KINDS:
            raise ValueError(f"no kind of finding {kind!r}; the kinds are {', '.join(KINDS)}")
        return tuple(f for f in self.findings if f.kind == kind)

    @property
    def dead_rules(self) -> tuple[str, ...]:
        """Labels of the rules that match no parameter."""
        return tuple(f.group for f in self.of_kind("dead_rule"))

    @property
    def shadowed_rules(self) -> tuple[str, ...]:
        """Labels of the rules whose every match an earlier rule took."""
        return tuple(f.group for f in self.of_kind("shadowed_rule"))

    def for_group(self, label: str) -> tuple[Finding, ...]:
        """The findings about one group (its rule, or the parameters it holds).

        Example:
            >>> from multiopt_lab._src.partition import findings
            >>> d = Diagnostics((findings.empty_group("adamw"),), "adamw")
            >>> [f.kind for f in d.for_group("adamw")]
            ['empty_group']
        """
        return tuple(f for f in self.findings if f.group == label)

    def findings_for(self, path: str) -> tuple[Finding, ...]:
        """The findings concerning one parameter, notes included, in the list's order.

        Example:
            >>> from multiopt_lab._src.partition import findings
            >>> d = Diagnostics((findings.overlap("a", ["w"], ["b"]),), "b")
            >>> [f.kind for f in d.findings_for("w")], d.findings_for("v")
            (['overlap'], ())
        """
        return tuple(f for f in self.findings if path in f.path_set)

    @cached_property
    def by_path(self) -> dict[str, tuple[Finding, ...]]:
        """path -> the findings concerning it, for the paths some finding concerns."""
        found: dict[str, list[Finding]] = {}
        for finding in self.findings:
            for path in finding.paths:
                found.setdefault(path, []).append(finding)
        return {path: tuple(items) for path, items in found.items()}

    @cached_property
    def fallback_finding(self) -> Finding | None:
        """What only the fallback took, as a finding (``check(allow_fallback=False)``
        fails on it); None when every parameter matched a rule."""
        if not self.fallback_only:
            return None
        return words.fallback_only(self.fallback_label, self.fallback_only)

    def failing(self, allow_fallback: bool = True, allow_overlap: bool = True,
                allow_near_misses: bool = True, allow_warnings: bool = True,
                allow_notes: bool = True) -> list[tuple[Finding, str]]:
        """``(finding, why)`` for each finding ``check`` with these settings fails on.

        Errors always fail; the settings add warnings, notes, or some kinds.

        Example:
            >>> from multiopt_lab._src.partition import findings
            >>> d = Diagnostics((findings.overlap("a", ["w"], ["b"]),), "b")
            >>> [(f.kind, why) for f, why in d.failing(allow_notes=False)]
            [('overlap', 'allow_notes=False')]
        """
        out = []
        for finding in self.findings:
            if finding.severity == "error":
                out.append((finding, "error"))
            elif finding.kind == "overlap" and not allow_overlap:
                out.append((finding, "allow_overlap=False"))
            elif finding.kind == "near_miss" and not allow_near_misses:
                out.append((finding, "allow_near_misses=False"))
            elif finding.severity == "warning" and not allow_warnings:
                out.append((finding, "allow_warnings=False"))
            elif finding.severity == "note" and not allow_notes:
                out.append((finding, "allow_notes=False"))
        if not allow_fallback and (fallback := self.fallback_finding) is not None:  # information, failing only on request
            out.append((fallback, "allow_fallback=False"))
        return out

    def lines(self, width: int | None = DEFAULT_WIDTH) -> list[str]:
        """The text form, one line each (what ``print`` shows), none wider than ``width``.

        Args:
            width (int | None, optional): Columns; ``None``: no limit. A long
                warning breaks between words, a listing between paths.
                Default: ``100``.

        Example:
            >>> Diagnostics((), "adamw", contracts_checked=True).lines()
            ['diagnostics: nothing found (no dead or shadowed rule, near miss, overlap, broken contract)']
        """
        width = check_width(width)
        counts = [counted(len(self._of(s)), s) for s in SEVERITIES if self._of(s)]
        if counts:
            lines = ["diagnostics: " + ", ".join(counts)]
        else:
            lines = ["diagnostics: nothing found (no dead or shadowed rule, near miss, overlap, "
                     "broken contract)"]
        # Messages read best at most words.MESSAGE_WIDTH wide; narrower when asked.
        measure = None if width is None else min(width, words.MESSAGE_WIDTH)
        for finding in self.findings:
            lines += finding.text(indent="  ", width=measure).splitlines()
        fallback = self.fallback_finding  # None unless the fallback took some parameter alone
        if fallback is not None:
            lines += words.wrap_words(f"{fallback.message}:", "  ", "    ", measure)
            lines += wrapped(fallback.blocks, "    ", width=measure)
        if not self.contracts_checked:
            lines += words.wrap_words(f"({words.CONTRACTS_UNCHECKED})", "  ", "    ", measure)
        # A word wider than the width (a very long path) is shortened, never split.
        return [clip(line, width) for line in wrap_lines(lines[:1], width) + lines[1:]]

    def text(self, width: int | None = DEFAULT_WIDTH) -> str:
        """The text form (see :meth:`lines`) as one string.

        Example:
            >>> from multiopt_lab._src.partition import findings
            >>> print(Diagnostics((findings.empty_group("adamw"),), "adamw", contracts_checked=True).text(width=40))
            diagnostics: 1 warning
              warning: the fallback 'adamw' takes no
                parameter: the rules take them all,
                and its optimizer only counts steps
              fix: narrow a rule if some
                parameters belong to the fallback (a
                LoRA model's matrices all 2-D?), or
                drop the group
        """
        return "\n".join(self.lines(width))

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str | None:
        return html_for("diagnostics", self)


# -- computing the findings ----------------------------------------------------------------
def _module_hint(rule, table) -> str:
    """For a dead rule naming module classes: what the model's classes say about them."""
    literals = sorted(getattr(rule, "module_literals", frozenset()) or ())
    if not literals or table is None or not getattr(table, "has_modules", False):
        return ""
    chains = table.chains
    everywhere = sorted({name for chain in chains for name in chain})
    holders = set(table.module_names)
    parts = []
    for name in literals:
        if name in holders:
            continue
        if name in everywhere:
            below = sorted({chain[-1] for chain in chains if name in chain[:-1]})
            parts.append(f"no parameter sits directly in a {name!r} (`module` is the class of the "
                         f"module holding a parameter); the classes below it that hold parameters "
                         f"are {', '.join(below)}: write `module == {quote_pattern(below[0])}`, "
                         f"or `within({quote_pattern(name)})` for everything inside it")
            continue
        close = difflib.get_close_matches(name, everywhere, n=1, cutoff=0.6)
        parts.append(f"no module of class {name!r} in this model"
                     + (f"; did you mean {close[0]!r}?" if close else
                        f"; its classes are {', '.join(everywhere)}"))
    return "; ".join(parts)


def _kinds_condition(kinds, ndims) -> str:
    """A condition taking parameters of these module classes (or, without them, dimensions)."""
    kinds = [k for k in dict.fromkeys(kinds) if k]
    if kinds:
        if len(kinds) == 1:
            return f"module == {quote_pattern(kinds[0])}"
        return "module in (" + ", ".join(quote_pattern(k) for k in kinds) + ")"
    ndims = sorted(set(ndims))
    return f"ndim == {ndims[0]}" if len(ndims) == 1 else f"ndim in ({', '.join(map(str, ndims))})"


def _rule_findings(table, masks, winners, labels, rule_texts, rules) -> list[Finding]:
    n_rules = len(labels) - 1
    counts = np.bincount(winners, minlength=len(labels)) if len(winners) else np.zeros(len(labels), int)
    found = []
    for g in range(n_rules):
        label = labels[g]
        if not masks[g].any():
            hint = _module_hint(rules[g] if rules else None, table)
            found.append(words.dead_rule(label, rule_texts.get(label, "?"), hint))
        elif counts[g] == 0:
            matched = np.flatnonzero(masks[g])
            takers = [labels[t] for t in np.unique(winners[matched]).tolist()]
            found.append(words.shadowed_rule(label, rule_texts.get(label, "?"), len(matched), takers))
    if len(winners) and counts[n_rules] == 0:
        found.append(words.empty_group(labels[n_rules]))
    return found


def _overlaps(paths, masks, winners, labels) -> tuple[dict, list[Finding]]:
    n_rules = len(labels) - 1
    if n_rules < 2 or not masks.shape[1]:
        return {}, []
    several = np.flatnonzero(masks.sum(axis=0) > 1)
    overlaps = {paths[i]: tuple(labels[g] for g in np.flatnonzero(masks[:, i]).tolist())
                for i in several.tolist()}
    found = []
    for g in np.unique(winners[several]).tolist():
        rows = several[winners[several] == g]
        later = sorted({k for i in rows.tolist() for k in np.flatnonzero(masks[:, i]).tolist() if k > g})
        found.append(words.overlap(labels[g], [paths[i] for i in rows.tolist()],
                                   [labels[k] for k in later]))
    return overlaps, found


class _Contracts:
    """Each group's optimizer contract checked on every parameter, as arrays."""

    def __init__(self, table, winners, labels, optimizers):
        self.table, self.labels, self.optimizers = table, labels, optimizers
        self.roles = roles = roles_of(table)
        n, n_groups = len(table), len(labels)
        self.contracts = [contract_of(o) for o in optimizers]
        self.untrainable = np.zeros((n_groups, n), dtype=bool)
        self.unfit = np.zeros((n_groups, n), dtype=bool)
        self.hidden = roles.embedding | roles.head
        for g, contract in enumerate(self.contracts):
            if contract is None:
                continue
            self.untrainable[g] = roles.ndim < contract.min_ndim
            self.unfit[g] = self.untrainable[g]
            if contract.flattens_stacks:
                self.unfit[g] |= roles.stack
            if contract.hidden_layers_only:
                self.unfit[g] |= self.hidden
        self.winners = winners

    def findings(self) -> list[Finding]:
        table, roles, labels = self.table, self.roles, self.labels
        paths = table.paths
        fallback = len(labels) - 1
        found = []
        for g, (optimizer, contract) in enumerate(zip(self.optimizers, self.contracts)):
            if contract is None:
                continue
            label, name = labels[g], type(optimizer).__name__
            mine = self.winners == g
            other = labels[fallback] if g != fallback else None
            flagged = np.zeros(len(paths), dtype=bool)
            rows = np.flatnonzero(mine & self.untrainable[g])
            if len(rows):
                found.append(words.too_few_dims(label, name, contract.min_ndim,
                                                contract.below_min_ndim,
                                                [paths[i] for i in rows.tolist()], other))
                flagged[rows] = True
            if contract.flattens_stacks:
                rows = np.flatnonzero(mine & roles.stack)
                if len(rows):
                    example = ", ".join(dict.fromkeys(describe_row(table, i) for i in rows.tolist()))
                    found.append(words.flattened_stack(label, name, [paths[i] for i in rows.tolist()],
                                                       example, contract.stack_fix))
                    flagged[rows] = True
            if contract.hidden_layers_only:
                emb = np.flatnonzero(mine & roles.embedding)
                head = np.flatnonzero(mine & roles.head)
                if len(emb) or len(head):
                    exclusions = []
                    if len(emb):
                        exclusions.append(f"module != {quote_pattern(table.module_names[emb[0]])}")
                    if len(head):
                        module = paths[head[0]].rpartition(".")[0]
                        exclusions.append(f"not glob({quote_pattern(module + '.*')})")
                    found.append(words.embedding_or_head(
                        label, name, [paths[i] for i in emb.tolist()],
                        [paths[i] for i in head.tolist()], contract.advice,
                        " and ".join(exclusions), other))
                    flagged[emb] = True
                    flagged[head] = True
            decay = weight_decay_of(optimizer, contract)
            if decay > 0:
                rows = np.flatnonzero(mine & (roles.vector | roles.embedding) & ~flagged)
                if len(rows):
                    found.append(words.weight_decay(label, name, decay,
                                                    [paths[i] for i in rows.tolist()],
                                                    roles.known_modules))
        return found


def _near_miss_findings(table, near: tuple[NearMiss, ...], labels) -> list[Finding]:
    found = []
    for rule in dict.fromkeys(m.label for m in near):
        misses = [m for m in near if m.label == rule]
        forms = list(dict.fromkeys((m.kind, m.like_kind) for m in misses))
        rows = [table.index(m.path) for m in misses]
        suggestion = _kinds_condition([table.module_names[i] for i in rows],
                                      [table.ndims[i] for i in rows])
        found.append(words.near_miss(labels[-1], rule, [m.path for m in misses], forms, suggestion))
    return found


def _ordered(found: list[Finding], labels) -> tuple[Finding, ...]:
    order = {label: i for i, label in enumerate(labels)}
    return tuple(sorted(found, key=lambda f: (SEVERITIES.index(f.severity), KINDS.index(f.kind),
                                              order.get(f.group, len(order)))))


def diagnose(table, masks: np.ndarray, winners: np.ndarray, labels, rule_texts,
             rules=None, optimizers=None) -> Diagnostics:
    """Compute :class:`Diagnostics` from per-rule match masks and the winning groups.

    Args:
        table (ParameterTable): The parameters (module classes, shapes, paths).
        masks (numpy.ndarray): ``(n_rules, n_paths)`` bools: rule i matched path j.
        winners (numpy.ndarray): Group index of each path (``n_rules`` = fallback).
        labels (Sequence[str]): Group labels, fallback last.
        rule_texts (dict[str, str]): Label -> rule as shown, for messages.
        rules (Sequence[Rule], optional): The rules, for what a dead rule's
            module classes say. Default: ``None``.
        optimizers (Sequence[Optimizer], optional): One per group, to check
            their contracts. Default: ``None`` (not checked).
    """
    paths = table.paths
    labels = tuple(labels)
    winners = np.asarray(winners)
    n_rules = len(labels) - 1
    fallback_only = tuple([paths[i] for i in np.flatnonzero(winners == n_rules).tolist()])
    found = _rule_findings(table, masks, winners, labels, rule_texts, rules)
    overlaps, overlap_findings = _overlaps(paths, masks, winners, labels)
    found += overlap_findings
    unfit = untrainable = None
    if optimizers is not None:
        contracts = _Contracts(table, winners, labels, list(optimizers))
        found += contracts.findings()
        unfit, untrainable = contracts.unfit, contracts.untrainable
    near = find_near_misses(table, winners, labels, unfit, untrainable)
    found += _near_miss_findings(table, near, labels)
    return Diagnostics(_ordered(found, labels), labels[-1], fallback_only, overlaps, near,
                       optimizers is not None)
