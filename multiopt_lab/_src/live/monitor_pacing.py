"""When the training monitor redraws, and on which thread.

A :class:`RedrawPacer` is told that data arrived (:meth:`~RedrawPacer.poke`)
and calls a drawing function at a bounded rate: at most ``max_rate`` times a
second, at least every ``max_interval`` seconds while data keeps arriving
(so the curves visibly move however slow a drawing is), and in between as
often as keeps drawing under ``budget`` of the time.

With ``background=True`` the drawing runs on a thread of its own: the
training thread only sets a flag. MLX releases the GIL while it computes
(``mx.eval``), so where a core is free the figure is drawn while the next
step runs; where none is (a busy 2-core machine) it costs as much as drawing
in place, plus the contention for the GIL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RedrawPacer"]


class RedrawPacer:
    """Calls ``draw`` when data arrived and enough time has passed.

    Args:
        draw (Callable[[], None]): Draws the figure; called with the pacer's lock held.
        max_rate (float): Drawings per second at most. Default: ``4``.
        budget (float): Largest share of time spent drawing, in ``(0, 1]``. Default: ``0.025``.
        max_interval (float): Longest wait between drawings while data arrives,
            whatever the budget. Default: ``1.0``.
        clock (Callable[[], float]): Time source. Default: ``time.perf_counter``.
        background (bool): Draw on a background thread. Default: ``False``.
    """

    def __init__(self, draw: Callable[[], None], *, max_rate: float = 4.0, budget: float = 0.025,
                 max_interval: float = 1.0, clock: Callable[[], float] = time.perf_counter,
                 background: bool = False) -> None:
        if max_rate <= 0 or not 0 < budget <= 1 or max_interval <= 0:
            raise ValueError(
                "need max_rate > 0, 0 < budget <= 1 and max_interval > 0, "
                f"got max_rate={max_rate}, budget={budget}, max_interval={max_interval}"
            )
        self._draw = draw
        self.min_interval = 1.0 / max_rate
        self.budget = budget
        self.max_interval = max(max_interval, self.min_interval)
        self.clock = clock
        self.background = background
        self.pending = False
        self.cost = 0.0
        self.drawings = 0
        #: The exception of the last drawing that failed on the background thread, if any.
        self.error: Exception | None = None
        self.last = float("-inf")
        self.lock = threading.RLock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        """Seconds between drawings now: from ``1 / max_rate`` up to ``max_interval``."""
        return min(max(self.min_interval, self.cost / self.budget), self.max_interval)

    @property
    def running(self) -> bool:
        """True while the background drawing thread lives (it stops soon after :meth:`close`).
        """
        thread = self._thread
        return thread is not None and thread.is_alive()

    def wait_closed(self, timeout: float | None = None) -> None:
        """After :meth:`close`: wait (at most ``timeout`` seconds) for the thread to stop."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def poke(self) -> None:
        """Data arrived: draw now if due, else mark a drawing as pending."""
        self.pending = True
        if self.background:
            self._start_thread()
            self._wake.set()
        elif self.clock() - self.last >= self.interval:
            self.draw_now()

    def draw_now(self) -> None:
        """Draw at once (whatever the pacing says) and note what it cost."""
        with self.lock:
            self.pending = False  # data arriving during the drawing makes it pending again
            start = self.clock()
            self._draw()
            end = self.clock()
            self.cost = max(end - start, 0.0)
            self.last = end
            self.drawings += 1

    def flush(self) -> None:
        """Draw now if data arrived since the last drawing."""
        if self.pending:
            self.draw_now()

    def close(self) -> None:
        """Stop the background thread (a drawing in progress finishes)."""
        self._closed.set()
        self._wake.set()

    def _start_thread(self) -> None:
        if self._thread is None and not self._closed.is_set():
            self._thread = threading.Thread(target=self._run, name="multiopt_lab monitor", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait()
            delay = self.last + self.interval - self.clock()
            if delay > 0 and self._closed.wait(delay):
                return
            self._wake.clear()
            if self._closed.is_set():
                return
            if self.pending:
                try:
                    self.draw_now()
                except Exception as error:  # kept for the owner; the thread lives on and the next drawing retries
                    self.error = error
