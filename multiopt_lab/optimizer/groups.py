"""Group labels and filters of a MultiOptimizer: defaults and validation.

Example:
    >>> import mlx.optimizers as optim
    >>> default_labels([optim.AdamW(1e-3), optim.AdamW(1e-2), optim.SGD(0.1)])
    ('adamw', 'adamw_2', 'sgd')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlx.optimizers import Optimizer

from multiopt_lab.rules import Rule, as_rule

__all__ = ["RESERVED_LABEL", "default_labels", "check_labels", "check_filters",
           "check_optimizers"]

#: The label metrics use for the totals over all groups.
RESERVED_LABEL = "total"


def default_labels(optimizers: Sequence[Any]) -> tuple[str, ...]:
    """One label per optimizer from its class name, made unique with ``_2``, ``_3``...

    Example:
        >>> import mlx.optimizers as optim
        >>> default_labels([optim.Muon(0.02), optim.AdamW(1e-3)])
        ('muon', 'adamw')
    """
    labels: list[str] = []
    taken: set[str] = set()
    for optimizer in optimizers:
        base = type(optimizer).__name__.lower()
        if base == RESERVED_LABEL:
            base = f"{base}_group"
        label, n = base, 1
        while label in taken:
            n += 1
            label = f"{base}_{n}"
        taken.add(label)
        labels.append(label)
    return tuple(labels)


def check_labels(labels: Sequence[str] | None, optimizers: Sequence[Any]) -> tuple[str, ...]:
    """Validate user labels (or derive them): one distinct, non-empty string per optimizer.

    Raises:
        ValueError: On a wrong count, a repeat, an empty or reserved label.
        TypeError: When a label is not a string.

    Example:
        >>> import mlx.optimizers as optim
        >>> check_labels(["matrices", "rest"], [optim.SGD(0.1), optim.SGD(0.1)])
        ('matrices', 'rest')
    """
    if labels is None:
        return default_labels(optimizers)
    if isinstance(labels, str):
        raise TypeError(
            f"expected a sequence of labels, one per optimizer, found the string {labels!r}; "
            f"write labels=({labels!r},)"
        )
    labels = tuple(labels)
    if len(labels) != len(optimizers):
        raise ValueError(
            f"expected {len(optimizers)} labels (one per optimizer), found {len(labels)}: "
            f"{labels!r}"
        )
    for label in labels:
        if not isinstance(label, str):
            raise TypeError(f"expected every label to be a str, found {label!r} "
                            f"({type(label).__name__})")
        if not label:
            raise ValueError(f"expected non-empty labels, found {labels!r}")
        if label == RESERVED_LABEL:
            raise ValueError(
                f"the label {RESERVED_LABEL!r} is reserved for the totals over all groups "
                f"in the metrics; found it in {labels!r}; pick another name"
            )
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(
            f"expected distinct labels, found {', '.join(map(repr, repeated))} more than "
            f"once in {labels!r}"
        )
    return labels


def check_optimizers(optimizers: Any) -> list[Any]:
    """A non-empty list of MLX optimizers, or a clear error.

    Example:
        >>> import mlx.optimizers as optim
        >>> len(check_optimizers((optim.SGD(0.1),)))
        1
    """
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


def check_filters(filters: Any, optimizers: Sequence[Any], cache: bool) -> tuple[Rule, ...]:
    """Turn ``filters`` into rules: one fewer than the optimizers (the last is the fallback).

    Raises:
        ValueError: On a wrong count (MLX's message, plus the fix), or when a
            rule expression reads values while the routing cache is on.
        RuleError: When a rule string does not parse.

    Example:
        >>> import mlx.optimizers as optim
        >>> [r.text for r in check_filters(["ndim == 2"], [optim.SGD(0.1)] * 2, True)]
        ['ndim == 2']
    """
    if isinstance(filters, (str, Rule)) or callable(filters):
        filters = [filters]
    filters = list(filters)
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
