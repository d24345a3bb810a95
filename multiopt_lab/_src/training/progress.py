"""Progress display and clean stopping for the training loop.

A progress object has ``update(step, loss)`` and ``close()``; it shares a
:class:`StopSignal` with the loop, which checks it between steps. In a
terminal :class:`TextProgress` redraws one line on stderr; in a notebook
:func:`make_progress` asks the factory the front end registered with
:func:`register_notebook_progress` (the package registers the widget bar of
``multiopt_lab._src.widgets.progress``: progress bar, loss, time left and a Stop
button). This layer never imports the front end itself, so
``import multiopt_lab`` stays free of ipywidgets.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from multiopt_lab._src.device import describe_device

__all__ = ["StopSignal", "Progress", "PacedProgress", "TextProgress", "NoProgress", "make_progress",
           "register_notebook_progress", "format_seconds", "catch_interrupt", "finish_progress",
           "failure_text"]


class StopSignal:
    """A flag the training loop checks between steps.
    """

    def __init__(self) -> None:
        self.requested = False
        self.reason: str | None = None

    def request(self, reason: str = "stop requested") -> None:
        """Ask the loop to stop after the current step."""
        self.reason = self.reason or reason
        self.requested = True


class Progress(Protocol):
    """What the training loop needs from a progress display.

    ``close()`` ends a run that returned; a display may also have
    ``fail(error)``, called instead when the run raised (see
    :func:`finish_progress`).
    """

    def update(self, step: int, loss: float | None) -> None: ...

    def close(self) -> None: ...


def failure_text(error: BaseException) -> str:
    """``failed: RuntimeError: the data loader broke`` (one line, at most 200 characters).
    """
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return "failed: " + (text if len(text) <= 200 else text[:199] + "…")


def finish_progress(progress: Progress, error: BaseException | None) -> None:
    """End the display: ``fail(error)`` when the run raised and it has one, else ``close()``.
    """
    fail = getattr(progress, "fail", None)
    if error is not None and callable(fail):
        fail(error)
    else:
        progress.close()


def format_seconds(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``.
    """
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class PacedProgress:
    """What every progress bar shares: the counts, the clock and the redraw pace.

    Subclasses draw in :meth:`draw`; :meth:`update` calls it at most
    ``max_rate`` times a second.
    """

    def __init__(self, total: int, stop: StopSignal, *, clock: Callable[[], float] = time.perf_counter,
                 max_rate: float = 10.0):
        self.total = total
        self.stop = stop
        self.clock = clock
        self.interval = 1.0 / max_rate
        self.start = clock()
        self.last_draw = float("-inf")
        self.step = 0
        self.loss: float | None = None
        #: Where the run computes, shown on the bar: ``cpu (AMD EPYC)``.
        self.device = describe_device()

    def times(self, now: float) -> tuple[float, float]:
        """Seconds elapsed and (estimated) seconds left at time ``now``."""
        elapsed = now - self.start
        left = elapsed / self.step * (self.total - self.step) if self.step else 0.0
        return elapsed, left

    def update(self, step: int, loss: float | None) -> None:
        """Note the latest step; redraw if the last redraw is old enough."""
        self.step = step
        if loss is not None:
            self.loss = loss
        now = self.clock()
        if now - self.last_draw >= self.interval:
            self.last_draw = now
            self.draw(now)

    def draw(self, now: float) -> None:
        """Show the current state (subclasses)."""
        raise NotImplementedError


class TextProgress(PacedProgress):
    """A one-line bar on stderr: ``[#####     ] 50/100 loss 1.2500 0:05<0:05``.

    Redrawn at most ``max_rate`` times a second, and once more at the end.

    Args:
        total (int): Steps expected.
        stop (StopSignal): Unused by the text bar (Ctrl-C is the way to stop).
        stream (TextIO, optional): Default: ``sys.stderr``.
        clock (Callable[[], float], optional): Default: ``time.perf_counter``.
        max_rate (float): Redraws per second at most. Default: ``10``.
    """

    def __init__(self, total: int, stop: StopSignal, *, stream: TextIO | None = None, clock: Callable[[], float] = time.perf_counter, max_rate: float = 10.0):
        super().__init__(total, stop, clock=clock, max_rate=max_rate)
        self.stream = stream if stream is not None else sys.stderr

    def line(self, now: float) -> str:
        """The text of the bar at time ``now``."""
        done = min(self.step / self.total, 1.0) if self.total else 1.0
        filled = int(done * 20)
        elapsed, left = self.times(now)
        loss = "" if self.loss is None else f" loss {self.loss:.4f}"
        return (f"[{'#' * filled}{' ' * (20 - filled)}] {self.step}/{self.total}{loss} "
                f"{format_seconds(elapsed)}<{format_seconds(left)} on {self.device}")

    def draw(self, now: float) -> None:
        """Rewrite the line."""
        self.stream.write("\r" + self.line(now))
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        self.stream.write("\r" + self.line(self.clock()) + "\n")
        self.stream.flush()

    def fail(self, error: BaseException) -> None:
        """End the line with the error that ended the run (instead of :meth:`close`)."""
        self.stream.write("\r" + self.line(self.clock()) + " " + failure_text(error) + "\n")
        self.stream.flush()


class NoProgress:
    """Shows nothing (``progress=False``)."""

    def __init__(self, total: int = 0, stop: StopSignal | None = None) -> None:
        self.stop = stop

    def update(self, step: int, loss: float | None) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""

    def fail(self, error: BaseException) -> None:
        """Do nothing (the error reaches the caller anyway)."""


_notebook_progress: Callable[[int, StopSignal], Progress] | None = None


def register_notebook_progress(factory: Callable[[int, StopSignal], Progress] | None) -> None:
    """Use ``factory(total, stop)`` for the progress display inside a notebook kernel.

    The package registers its widget bar on import; ``None`` falls back to the
    text bar. The factory may raise ``ImportError`` (a kernel without
    ipywidgets): the text bar is used then.
    """
    global _notebook_progress
    _notebook_progress = factory


def _in_notebook_kernel() -> bool:
    # Only look at modules already loaded: importing IPython here would break
    # the promise that `import multiopt_lab` stays light.
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def make_progress(total: int, stop: StopSignal, progress: bool | Callable | object = True) -> Progress:
    """The progress display for ``train(progress=...)``.

    ``True`` picks the registered notebook bar inside a Jupyter kernel, the
    text bar elsewhere; ``False`` shows nothing; a callable is called as
    ``progress(total, stop)``; any other object is used as it is.
    """
    if progress is False or progress is None:
        return NoProgress(total, stop)
    if progress is True:
        factory = _notebook_progress
        if factory is not None and _in_notebook_kernel():
            try:
                return factory(total, stop)
            except ImportError:  # a kernel without ipywidgets: the text bar still works
                return TextProgress(total, stop)
        return TextProgress(total, stop)
    if callable(progress) and not hasattr(progress, "update"):
        return progress(total, stop)
    return progress  # type: ignore[return-value]


class catch_interrupt:
    """Turn Ctrl-C (SIGINT, also the notebook's interrupt) into a stop request.

    The first interrupt asks the loop to stop at the next step boundary; a
    second one raises ``KeyboardInterrupt`` at once, for a step that hangs.
    Outside the main thread it does nothing (signals only reach that thread).
    """

    def __init__(self, stop: StopSignal) -> None:
        self.stop = stop
        self.previous: Any = None  # what signal.signal returned: a handler, an int or None

    def _handle(self, _signum, _frame) -> None:
        if self.stop.requested:
            raise KeyboardInterrupt
        self.stop.request("interrupted (Ctrl-C)")

    def __enter__(self) -> catch_interrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *_exc_info) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
