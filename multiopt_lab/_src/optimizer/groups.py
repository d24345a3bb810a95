"""Group labels and filters of a MultiOptimizer: defaults and validation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

from mlx.optimizers import Optimizer

from multiopt_lab._src.arguments import found
from multiopt_lab._src.partition.labels import RESERVED_LABELS, check_labels, label_text_problem
from multiopt_lab._src.rules import Rule, as_rule

__all__ = ["default_labels", "group_labels", "filter_list", "check_filters", "check_optimizers"]


def default_labels(optimizers: Sequence[Any]) -> tuple[str, ...]:
    """One label per optimizer from its class name, made unique with ``_2``, ``_3``...
    """
    labels: list[str] = []
    taken: set[str] = set()
    for optimizer in optimizers:
        base = type(optimizer).__name__.lower()
        if not base or label_text_problem(base) is not None:
            base = "optimizer"  # a class made with type() may have any name
        if base in RESERVED_LABELS:
            base = f"{base}_group"
        label, n = base, 1
        while label in taken:
            n += 1
            label = f"{base}_{n}"
        taken.add(label)
        labels.append(label)
    return tuple(labels)


def group_labels(labels: Sequence[str] | None, optimizers: Sequence[Any]) -> tuple[str, ...]:
    """The labels of a MultiOptimizer's groups: ``labels`` checked, or derived from the classes.

    The checks are :func:`multiopt_lab._src.partition.labels.check_labels`'s (one
    non-empty, distinct string per optimizer, one line of printable text,
    never ``"total"`` or ``"-"``).
    """
    if labels is None:
        return default_labels(optimizers)
    return check_labels(labels, len(optimizers) - 1)


def check_optimizers(optimizers: Any) -> list[Any]:
    """A non-empty list of MLX optimizers, or a clear error.
    """
    if isinstance(optimizers, Optimizer) or not _is_sequence(optimizers):
        raise TypeError(f"optimizers must be a list of mlx.optimizers optimizers, one per group, "
                        f"found {found(optimizers)}; e.g. [optim.Muon(0.02), optim.AdamW(1e-3)]")
    optimizers = list(optimizers)
    if not optimizers:
        raise ValueError("expected at least one optimizer, found none")
    for i, optimizer in enumerate(optimizers):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"expected mlx.optimizers.Optimizer instances, found {type(optimizer).__name__} "
                f"at position {i}"
            )
    if len({id(o) for o in optimizers}) != len(optimizers):
        raise ValueError(
            "expected a distinct optimizer object per group, found the same object twice; "
            "create one optimizer per group (they keep separate state)"
        )
    return optimizers


def _is_sequence(value: Any) -> bool:
    """A list-like of items: not a mapping, a string, a set or a single object."""
    return (isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping, Set))
            and not isinstance(value, Optimizer))


def filter_list(filters: Any) -> list:
    """``filters`` as a list: one rule (a string, a Rule, a callable) becomes a list of one;
    anything else that is not a list of them is a TypeError.
    """
    if isinstance(filters, (str, Rule)) or callable(filters):
        return [filters]
    if not _is_sequence(filters):
        raise TypeError(f"filters must be a list of rules (strings such as \"ndim == 2\", Rules "
                        f"or callables (path, array) -> bool), one per optimizer but the last, "
                        f"found {found(filters)}")
    return list(filters)


def check_filters(filters: Any, optimizers: Sequence[Any], cache: bool) -> tuple[Rule, ...]:
    """Turn ``filters`` into rules: one fewer than the optimizers (the last is the fallback).

    Raises:
        ValueError: On a wrong count (MLX's message, plus the fix), or when a
            rule expression reads values while the routing cache is on.
        RuleError: When a rule string does not parse.
    """
    filters = filter_list(filters)
    needed = len(optimizers) - 1
    if len(filters) != needed:
        raise ValueError(
            f"Given {len(filters)} filters but {needed} needed: one per optimizer except "
            "the last, which takes every parameter no filter took."
        )
    rules = tuple(as_rule(f) for f in filters)
    if cache:
        for index, rule in enumerate(rules):
            # A Python callable cannot say what it reads: MLX's filters are
            # callables on (path, array), so they are trusted to be structural.
            if rule.text is not None and rule.depends_on_values:
                raise ValueError(
                    f"filter {index} ({rule.text or rule!r}) reads parameter values, but the "
                    "routing is cached per structure (paths, shapes, dtypes); pass cache=False "
                    "to re-run the filters on every step"
                )
    return rules
