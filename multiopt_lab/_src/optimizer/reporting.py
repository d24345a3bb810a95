"""Findings seen at training time: one Python warning per error or warning, once.

``train()``, the mlx-lm ``LabCallback`` and a ``MultiOptimizer``'s first
update (and its first update after a repartition) report the findings of
the assignment they train with: each finding of severity error or warning
becomes one :class:`~multiopt_lab.FindingWarning` naming
its paths. A multiopt_lab ``MultiOptimizer`` remembers what it reported, so
the three never warn twice about the same finding; ``warn_findings=False``
on any of them marks the findings reported without warning.
"""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType
from typing import Any

import mlx
import mlx.optimizers as optim

from multiopt_lab._src.optimizer.groups import group_labels
from multiopt_lab._src.partition.assignment import Assignment, assign
from multiopt_lab._src.partition.findings import Finding, FindingWarning

__all__ = ["warn_once", "assignment_for", "report_findings"]

# A finding's warning points at the user's line: the first frame outside these (the whole
# package, public modules included: this file is multiopt_lab/_src/optimizer/reporting.py).
_PACKAGE_FOLDER = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LIBRARY_FOLDERS = tuple(os.path.abspath(folder) + os.sep for folder in (_PACKAGE_FOLDER, *mlx.__path__))


def _user_stacklevel() -> int:
    """``warnings.warn``'s stacklevel, in the caller, of the nearest frame outside
    multiopt_lab and MLX (the user's call of train(), update(), LabCallback...)."""
    frame: FrameType | None = sys._getframe(2)  # the caller's caller
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_LIBRARY_FOLDERS):
        frame = frame.f_back
        level += 1
    return level


def warn_once(findings, seen: set, warn: bool = True) -> list[Finding]:
    """Warn once per finding of severity error or warning whose key is not in ``seen``.

    Args:
        findings (Iterable[Finding]): The findings.
        seen (set): Keys of the findings already reported; updated.
        warn (bool, optional): Warn (``False``: only mark them reported). Default: ``True``.

    Returns:
        list[Finding]: The findings newly reported.
    """
    new = [f for f in findings if f.flagged and f.key not in seen]
    stacklevel = _user_stacklevel() if warn and new else 1
    for finding in new:
        seen.add(finding.key)
        if warn:
            warnings.warn(FindingWarning(finding), stacklevel=stacklevel)
    return new


def assignment_for(optimizer: Any, model: Any) -> Assignment | None:
    """The assignment ``optimizer`` trains ``model`` with, its optimizers known.

    A multiopt_lab ``MultiOptimizer`` (its rules), MLX's ``MultiOptimizer``
    (its filters) or any MLX optimizer (one group holding everything); None
    for anything else.
    """
    if callable(getattr(optimizer, "assign", None)) and hasattr(optimizer, "labels"):
        return optimizer.assign(model)
    if isinstance(optimizer, optim.MultiOptimizer):
        # MLX appends its own catch-all filter for the last optimizer.
        optimizers = list(optimizer.optimizers)
        return assign(model, list(optimizer.filters[:len(optimizers) - 1]),
                      group_labels(None, optimizers), optimizers=optimizers)
    if isinstance(optimizer, optim.Optimizer):
        return assign(model, [], group_labels(None, [optimizer]), optimizers=[optimizer])
    return None


def report_findings(optimizer: Any, model: Any, warn: bool = True) -> list[Finding]:
    """Warn once per error or warning found in how ``optimizer`` splits ``model``.

    With a multiopt_lab ``MultiOptimizer`` the findings reported are
    remembered by the optimizer (its own first update then says nothing
    more about them); ``warn=False`` marks them reported without warning.

    Returns:
        list[Finding]: The findings newly reported.
    """
    seen = getattr(optimizer, "reported_findings", None)
    if seen is None:
        seen = set()
    try:
        assignment = assignment_for(optimizer, model)
    except (ValueError, TypeError):  # the training step will say what is wrong, better
        return []
    if assignment is None:
        return []
    return warn_once(assignment.diagnostics.findings, seen, warn)
