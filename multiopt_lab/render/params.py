"""Per-parameter facts read off an assignment, shared by every renderer.

Each parameter carries the findings of its assignment that concern it
(``findings``), drawn from ``assignment.diagnostics``; its flags mark the
likely mistakes among them (errors and warnings: a near miss, Muon on a
vector...), one word each (:data:`NEAR_MISS`...). Notes (weight decay on a
norm, a parameter several rules matched) are not flags. A parameter the
fallback took because no rule matched it carries no flag: that is what the
fallback is for, and its rule reads ``(fallback)``.

Example:
    >>> import mlx.core as mx
    >>> from multiopt_lab.partition.assignment import assign
    >>> tree = {"q": {"weight": mx.zeros((4, 4))}, "experts": {"weight": mx.zeros((2, 4, 4))},
    ...         "norm": {"weight": mx.zeros((4,))}}
    >>> infos = param_infos(assign(tree, ["ndim == 2"], ["muon", "adamw"]))
    >>> infos["experts.weight"].flags, infos["experts.weight"].nearly, infos["norm.weight"].flags
    (('near miss',), 'muon', ())
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

__all__ = ["ParamInfo", "param_infos", "rule_display", "flag_of", "NEAR_MISS"]

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: Flag for a parameter the fallback took that looks like what a rule took.
NEAR_MISS = "near miss"


def flag_of(finding) -> str:
    """The flag a finding puts on its rows: its kind in words (``"near miss"``).

    Example:
        >>> from multiopt_lab.partition import findings
        >>> flag_of(findings.too_few_dims("muon", "Muon", 2, "", ["b"], "adamw"))
        'too few dims'
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

    Example:
        >>> ParamInfo("w", (2,), "float32", 2, 0, "sgd", "(fallback)", (), ()).size
        2
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

    Example:
        >>> rule_display(None)
        '(fallback)'
    """
    if rule is None:
        return "(fallback)"
    return rule.describe()


def param_infos(assignment) -> dict[str, ParamInfo]:
    """One :class:`ParamInfo` per path, in the assignment's parameter order.

    Computed once per assignment (the tree, the legend and the details pane
    all read it) and kept while the assignment lives.

    Args:
        assignment (Assignment): The assignment to read.

    Example:
        >>> import mlx.nn as nn
        >>> from multiopt_lab.partition.assignment import assign
        >>> list(param_infos(assign(nn.Linear(2, 2), ["ndim == 2"])))
        ['weight', 'bias']
    """
    try:
        return _CACHE[assignment]
    except (KeyError, TypeError):
        pass
    table = assignment.table
    labels = assignment.group_labels
    rules = [rule_display(r) for r in assignment.rules]
    diagnostics = assignment.diagnostics
    near_misses = {miss.path: miss for miss in diagnostics.near_misses}
    # overlaps: path -> labels of every rule that matched it, the winner first;
    # a path absent from it was matched by at most one rule.
    overlaps = diagnostics.overlaps
    by_path = diagnostics.by_path
    group_index = assignment.group_index
    infos = {}
    for path, shape, dtype, size, modules in zip(table.paths, table.shapes, table.dtypes,
                                                 table.sizes, table.module_chains):
        group = group_index[path]
        also, flags, nearly, like, found = (), (), "", "", by_path.get(path, ())
        if found:
            flags = tuple(flag_of(f) for f in found if f.flagged)
        if path in near_misses:
            miss = near_misses[path]
            nearly, like = miss.label, f"{miss.like} ({miss.like_kind})"
        if path in overlaps:
            also = tuple(overlaps[path][1:])
        infos[path] = ParamInfo(path, shape, dtype, size, group, labels[group], rules[group], also,
                                flags, nearly, like, modules, found)
    try:
        _CACHE[assignment] = infos
    except TypeError:  # not weak-referenceable: just don't cache
        pass
    return infos
