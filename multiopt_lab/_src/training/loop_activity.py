"""Whether a training loop is running now, for front ends that must act mid-loop.

A notebook cell running a training loop keeps the kernel's main thread busy,
so widget messages wait until the cell ends. The rule editor has its
messages handled on a kernel subshell while :func:`training_in_progress` is
entered (``multiopt_lab.train`` enters it for you; wrap your own loop in it
to get the same), so an Apply clicked mid-run lands at the next step.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from collections.abc import Iterator

__all__ = ["is_training", "training_in_progress"]

_lock = threading.Lock()
_running = 0


def is_training() -> bool:
    """True while some thread is inside :func:`training_in_progress`.
    """
    return _running > 0


@contextmanager
def training_in_progress() -> Iterator[None]:
    """Mark the enclosed block as a running training loop (nests, thread-safe).

    Example:
        >>> with training_in_progress():
        ...     pass
    """
    global _running
    with _lock:
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
