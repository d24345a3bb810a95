"""Per-parameter facts read off an assignment, shared by every renderer.

Example:
    >>> from multiopt_lab import assign
    >>> from multiopt_lab.examples import MLP
    >>> assignment = assign(MLP(4, [8], 2), ["ndim == 2"], ["muon", "adamw"])
    >>> infos = param_infos(assignment)
    >>> infos["head.bias"].flags, infos["head.weight"].rule
    (('fallback only',), 'ndim == 2')
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

__all__ = ["ParamInfo", "param_infos", "rule_display", "FALLBACK_ONLY", "OVERLAP"]

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: Flag for a parameter that no rule matched, so the fallback group took it.
FALLBACK_ONLY = "fallback only"
#: Flag for a parameter that more than one rule matched (first match won).
OVERLAP = "overlap"


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
        flags (tuple[str, ...]): Diagnostics: :data:`FALLBACK_ONLY`, :data:`OVERLAP`.

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
        >>> from multiopt_lab import assign
        >>> from multiopt_lab.examples import MLP
        >>> assignment = assign(MLP(4, [8], 2), ["ndim == 2"], ["muon", "adamw"])
        >>> list(param_infos(assignment))
        ['layers.0.weight', 'layers.0.bias', 'head.weight', 'head.bias']
    """
    try:
        return _CACHE[assignment]
    except (KeyError, TypeError):
        pass
    table = assignment.table
    labels = assignment.group_labels
    rules = [rule_display(r) for r in assignment.rules]
    diagnostics = assignment.diagnostics
    fallback_only = set(diagnostics.fallback_only)
    # overlaps: path -> labels of every rule that matched it, the winner first;
    # a path absent from it was matched by at most one rule.
    overlaps = diagnostics.overlaps
    group_index = assignment.group_index
    infos = {}
    for path, shape, dtype, size in zip(table.paths, table.shapes, table.dtypes, table.sizes):
        group = group_index[path]
        also, flags = (), ()
        if path in fallback_only:
            flags = (FALLBACK_ONLY,)
        elif path in overlaps:
            also, flags = tuple(overlaps[path][1:]), (OVERLAP,)
        infos[path] = ParamInfo(path, shape, dtype, size, group, labels[group], rules[group], also, flags)
    try:
        _CACHE[assignment] = infos
    except TypeError:  # not weak-referenceable: just don't cache
        pass
    return infos
