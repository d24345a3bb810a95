"""The rule editor's logic without any widget: parse typed rules, assign, compare.

The table the editor holds comes from the model, so typed rules may read
``module`` and ``modules``; from a bare parameter dict such a rule is an
inline error that says to pass the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from multiopt_lab._src.partition.assignment import assign
from multiopt_lab._src.rules import RuleError, rule

__all__ = ["Draft", "parse_rules", "evaluate_draft", "rule_field_text", "group_warning"]

_EMPTY = "a rule cannot be empty; type an expression such as: ndim == 2"


def rule_field_text(current) -> str:
    """What a rule's text field shows: its expression, or ``""`` for a Python callable.
    """
    return current.text if current.text is not None else ""


@dataclass
class Draft:
    """The outcome of the rules as typed.

    Attributes:
        rules (tuple | None): Parsed rules, one per group but the fallback; None on error.
        errors (dict[str, RuleError]): Group label -> what is wrong with its rule.
        assignment (Assignment | None): What the typed rules would give.
        moves (list[Move]): Parameters that would change group, against ``current``.
        changed (bool): The typed rules differ from the optimizer's.
    """

    rules: tuple | None
    errors: dict = field(default_factory=dict)
    assignment: object = None
    moves: list = field(default_factory=list)
    changed: bool = False

    @property
    def ok(self) -> bool:
        """No error: the draft can be applied."""
        return not self.errors


def parse_rules(texts: Sequence[str], current: Sequence, labels: Sequence[str]):
    """Parse each typed rule; an empty field keeps a Python callable it stood for.

    Args:
        texts (Sequence[str]): One text per group but the fallback.
        current (Sequence[Rule]): The optimizer's rules (for callables kept as they are).
        labels (Sequence[str]): Group labels, fallback last.

    Returns:
        tuple[list[Rule], dict[str, RuleError]]: Rules (``None`` where in error) and errors.
    """
    rules, errors = [], {}
    for text, old, label in zip(texts, current, labels):
        if not text.strip():
            if old.text is None:
                rules.append(old)
                continue
            errors[label] = RuleError(_EMPTY, text, 0)
            rules.append(None)
            continue
        try:
            rules.append(rule(text, label))
        except RuleError as err:
            errors[label] = err
            rules.append(None)
    return rules, errors


def evaluate_draft(texts: Sequence[str], optimizer, table, current_assignment) -> Draft:
    """Parse ``texts``, assign ``table`` with them and compare with ``current_assignment``.

    Never raises for a bad rule: errors are in ``Draft.errors`` (by group label),
    including a rule that fails on a parameter (``shape[2]`` on a vector).

    Args:
        texts (Sequence[str]): The typed rules, one per group but the fallback.
        optimizer (MultiOptimizer): Supplies labels and the current rules.
        table (ParameterTable): The parameters.
        current_assignment (Assignment): What the optimizer does now.
    """
    labels = tuple(optimizer.labels)
    current = tuple(optimizer.filters)
    rules, errors = parse_rules(texts, current, labels)
    if errors:
        return Draft(None, errors)
    try:
        # With the optimizers, the findings check what each expects (Muon below 2-D...).
        assignment = assign(table, rules, labels, optimizers=tuple(optimizer.optimizers))
    except RuleError as err:
        culprit = next((label for label, r in zip(labels, rules) if r.text == err.text), labels[0])
        return Draft(None, {culprit: err})
    # cache_key ignores whitespace-only edits and compares callables by identity.
    changed = any(r.cache_key != old.cache_key for r, old in zip(rules, current))
    return Draft(tuple(rules), {}, assignment, current_assignment.diff(assignment), changed)


def group_warning(assignment, label: str) -> str:
    """The likely mistakes the findings see in one group, for its row in the editor; ``""``
    if none. Errors and warnings only, one line each (the finding's title, paths and fix;
    the whole message and the notes are in the legend and the diagnostics). The fallback catching what no rule matched is its job, not
    a warning; the fallback catching a near miss (a parameter like what a rule took) is one.
    """
    return "\n".join(f.brief(2) for f in assignment.diagnostics.for_group(label) if f.flagged)
