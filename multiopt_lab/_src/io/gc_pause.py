"""Python's cycle collector paused while a checkpoint's many containers are built.

Loading 50,000 parameters' state makes a few hundred thousand dicts, lists
and tuples. Each 700 new containers the collector runs, and its older
generations walk everything alive (the model and the tree being built): that
cost half the time of a load. Reference counting still frees all that is
dropped meanwhile; only cycles wait until the collector is back.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from collections.abc import Iterator

__all__ = ["gc_paused"]

_lock = threading.Lock()
_depth = 0  # pauses under way (nested or on several threads); the last one resumes
_resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable ``gc`` inside the block; enabled again after it (when it was before)."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
