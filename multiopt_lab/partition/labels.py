"""Group labels: one per filter plus the fallback, unique, non-empty, never ``"total"``.

Every place that takes labels (``assign``, ``MultiOptimizer``, rule files)
checks them here, with the same rules and the same messages.

Example:
    >>> check_labels(["muon", "adamw"], 1)
    ('muon', 'adamw')
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

__all__ = ["TOTAL_LABEL", "check_labels"]

#: The label of the totals over all groups (in ``MultiOptimizer.metrics`` and a
#: ``History``); no group may take it.
TOTAL_LABEL = "total"


def check_labels(labels: Sequence[str] | None, n_filters: int) -> tuple[str, ...]:
    """Validate group labels (or make ``group_0 .. group_N``); one per filter plus the fallback.

    Raises:
        TypeError: When ``labels`` is one string instead of a sequence.
        ValueError: On a wrong count, a label that is not a non-empty
            string, a repeat, or the reserved label ``"total"``.

    Example:
        >>> check_labels(None, 1)
        ('group_0', 'group_1')
    """
    if labels is None:
        return tuple(f"group_{i}" for i in range(n_filters + 1))
    if isinstance(labels, str):
        raise TypeError(f"labels must be a list of strings, one per group, got the string "
                        f"{labels!r}; write labels=[{labels!r}, ...]")
    labels = tuple(labels)
    if len(labels) != n_filters + 1:
        raise ValueError(f"Given {n_filters} filters but {len(labels) - 1} needed: expected "
                         f"{n_filters + 1} labels (one per group), found {len(labels)}: "
                         f"{list(labels)}; the last group is the fallback, which takes no filter.")
    for label in labels:
        if not isinstance(label, str) or not label:
            raise ValueError(f"group labels must be non-empty strings (str), got {label!r} "
                             f"({type(label).__name__}) in {list(labels)}")
        if label == TOTAL_LABEL:
            raise ValueError(f"the label {TOTAL_LABEL!r} is reserved for the totals over all "
                             f"groups in the metrics; found it in {list(labels)}; pick another name")
    # One pass (a rule file may hold 100,000 groups): never labels.count per label.
    repeated = sorted(label for label, times in Counter(labels).items() if times > 1)
    if repeated:
        raise ValueError(f"expected distinct group labels, found labels that are not unique; "
                         f"{repeated} appear more than once in {list(labels)}")
    return labels
