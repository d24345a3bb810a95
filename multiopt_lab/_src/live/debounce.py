"""Run a callback once typing pauses, on the kernel's own event loop.

``ipywidgets.Text(continuous_update=True)`` sends every keystroke. A
:class:`Debouncer` delays the expensive work until no new call came for
``seconds``; the timer lives on the running asyncio loop of the thread that
handled the keystroke, so the callback runs on the kernel's main thread when
the kernel is idle, and on its subshell's thread, beside the training loop,
while a cell trains (docs/architecture.md, "One keystroke"). With ``seconds <= 0``, or outside any running loop
(a plain script, a unit test), the callback runs at once; :meth:`flush` runs a
pending call now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Debouncer"]


class Debouncer:
    """Call ``callback`` after ``seconds`` without a new request.

    Args:
        seconds (float): Quiet time before the callback runs; ``<= 0`` runs it at once.
        callback (Callable[[], None]): What to run.
    """

    def __init__(self, seconds: float, callback: Callable[[], None]):
        self.seconds = float(seconds)
        self.callback = callback
        self._handle: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> bool:
        """Whether a call is waiting for the quiet time to pass."""
        return self._handle is not None

    def __call__(self) -> None:
        """Request a call: (re)start the quiet-time timer, or run now without one."""
        self.cancel()
        if self.seconds <= 0:
            self.callback()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.callback()
            return
        self._handle = loop.call_later(self.seconds, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self.callback()

    def flush(self) -> None:
        """Run a pending call now (nothing happens when none is pending).
        """
        if self._handle is not None:
            self.cancel()
            self.callback()

    def cancel(self) -> None:
        """Drop a pending call without running it."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
