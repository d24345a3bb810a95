"""Cache of rule selections keyed by (what the rule computes, tree structure).

Re-assigning after one rule changed re-evaluates only that rule: the others'
selections come back from here. Rules that may depend on parameter values
(callables not declared structural) are never cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

__all__ = ["cached_select", "clear_selection_cache", "MAX_ENTRIES"]

#: Selections kept; each is one bool per parameter (10 KB for 10,000 parameters).
MAX_ENTRIES = 512

_selections: OrderedDict[tuple, np.ndarray] = OrderedDict()
# The rule editor (a kernel subshell's thread) and the training thread both
# assign: a lookup and its move-to-end, or an insert and its eviction, must
# not interleave with another thread's. The selection itself runs unlocked.
_lock = threading.Lock()


def cached_select(rule, table) -> np.ndarray:
    """``rule.select(table)``, reused when the same rule met the same structure.

    Returns:
        numpy.ndarray: A read-only bool array, one entry per table row.
    """
    if rule.depends_on_values:
        return rule.select(table)
    key = (rule.cache_key, table.key)
    with _lock:
        found = _selections.get(key)
        if found is not None:
            _selections.move_to_end(key)
            return found
    selection = rule.select(table)
    selection.setflags(write=False)
    with _lock:
        _selections[key] = selection
        while len(_selections) > MAX_ENTRIES:
            _selections.popitem(last=False)
    return selection


def clear_selection_cache() -> None:
    """Forget every cached selection (tests and memory-conscious callers).
    """
    with _lock:
        _selections.clear()
