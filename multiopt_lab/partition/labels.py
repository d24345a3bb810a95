"""Group labels: one per filter plus the fallback, unique, non-empty.

Example:
    >>> check_labels(["muon", "adamw"], 1)
    ('muon', 'adamw')
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["check_labels"]


def check_labels(labels: Sequence[str] | None, n_filters: int) -> tuple[str, ...]:
    """Validate group labels (or make ``group_0 .. group_N``); one per filter plus the fallback.

    Example:
        >>> check_labels(None, 1)
        ('group_0', 'group_1')
    """
    if labels is None:
        return tuple(f"group_{i}" for i in range(n_filters + 1))
    if isinstance(labels, str):
        raise TypeError(f"labels must be a list of strings, got the string {labels!r}")
    labels = tuple(labels)
    if len(labels) != n_filters + 1:
        raise ValueError(f"Given {n_filters} filters but {len(labels) - 1} needed: "
                         f"{len(labels)} labels {list(labels)} name the groups, and the last "
                         "group is the fallback, which takes no filter.")
    for label in labels:
        if not isinstance(label, str) or not label:
            raise ValueError(f"group labels must be non-empty strings, got {label!r} in {list(labels)}")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"group labels must be unique; {repeated} appear more than once in {list(labels)}")
    return labels
