"""Per-parameter facts read off an assignment, shared by every renderer.

Flags mark likely mistakes only: a parameter several rules matched
(:data:`OVERLAP`) and a near miss (:data:`NEAR_MISS`: the fallback took it,
but it looks like what a rule took). A parameter the fallback took because
no rule matched it carries no flag: that is what the fallback is for, and
its rule reads ``(fallback)``.

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

__all__ = ["ParamInfo", "param_infos", "rule_display", "OVERLAP", "NEAR_MISS"]

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: Flag for a parameter that more than one rule matched (first match won).
OVERLAP = "overlap"
#: Flag for a parameter the fallback took that looks like what a rule took.
NEAR_MISS = "near miss"


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
        flags (tuple[str, ...]): Warnings: :data:`OVERLAP`, :data:`NEAR_MISS`.
        nearly (str): For a near miss, the label of the rule it nearly matched; else ``""``.
        like (str): For a near miss, the parameter that rule took which it resembles,
            with its module class and shape; else ``""``.
        modules (tuple[str, ...] | None): Class names from the model down to the
            module holding it (None when the model was not at hand).

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
    group_index = assignment.group_index
    infos = {}
    for path, shape, dtype, size, modules in zip(table.paths, table.shapes, table.dtypes,
                                                 table.sizes, table.module_chains):
        group = group_index[path]
        also, flags, nearly, like = (), (), "", ""
        if path in near_misses:
            miss = near_misses[path]
            flags, nearly, like = (NEAR_MISS,), miss.label, f"{miss.like} ({miss.like_kind})"
        elif path in overlaps:
            also, flags = tuple(overlaps[path][1:]), (OVERLAP,)
        infos[path] = ParamInfo(path, shape, dtype, size, group, labels[group], rules[group], also,
                                flags, nearly, like, modules)
    try:
        _CACHE[assignment] = infos
    except TypeError:  # not weak-referenceable: just don't cache
        pass
    return infos
