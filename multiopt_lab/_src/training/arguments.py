"""Checks of a ``History`` argument, beside the generic ones of :mod:`multiopt_lab._src.arguments`.
"""

from __future__ import annotations

import os
from typing import Any

from multiopt_lab._src.arguments import check_kind
from multiopt_lab._src.training.history import History

__all__ = ["check_history", "required_history"]


def check_history(value: Any, where: str, name: str = "history", *,
                  optional: bool = True) -> Any:
    """A ``History`` (or None when ``optional``), or a TypeError; a file name gets the fix.
    """
    fix = (f"to record into the file {os.fspath(value)!r} pass {name}=History({os.fspath(value)!r})"
           if isinstance(value, (str, os.PathLike)) else "pass multiopt_lab.History()")
    return check_kind(value, History, where, name, "a multiopt_lab History", fix,
                      optional=optional)


def required_history(value: Any, where: str, name: str = "history") -> Any:
    """:func:`check_history` with None refused (what a figure or monitor draws).
    """
    return check_history(value, where, name, optional=False)
