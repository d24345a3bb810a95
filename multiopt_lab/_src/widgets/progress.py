"""Notebook progress bar with a Stop button that works while the cell runs.

A kernel handles widget messages (a button click) on its main thread, which
is busy running the training cell, so a plain ``Button.on_click`` fires only
after training ends. The Stop button is routed to a kernel subshell
(:mod:`multiopt_lab._src.widgets.subshell`), so its click is handled at once, on
that thread; the training loop sees the flag at the next step boundary.

Where a kernel has no subshells (ipykernel < 7, some hosted notebooks) the
button cannot act during the cell: it is then disabled with a tooltip that
points to the notebook's interrupt button (■), which
:func:`~multiopt_lab._src.training.progress.catch_interrupt` turns into the same clean
stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import ipywidgets

from multiopt_lab._src.training.progress import PacedProgress, StopSignal, failure_text, format_seconds
from multiopt_lab._src.widgets.subshell import route_to_subshell

__all__ = ["NotebookProgress"]

class NotebookProgress(PacedProgress):
    """Progress bar, ``step / total · loss · elapsed < left`` and a Stop button.

    Args:
        total (int): Steps expected.
        stop (StopSignal): Set when Stop is clicked.
        max_rate (float): Label updates per second at most. Default: ``10``.
        clock (Callable[[], float]): Time source. Default: ``time.perf_counter``.
        display_now (bool): Display the bar at once. Default: ``True``.
    """

    def __init__(self, total: int, stop: StopSignal, *, max_rate: float = 10.0, clock: Callable[[], float] = time.perf_counter, display_now: bool = True):
        super().__init__(total, stop, clock=clock, max_rate=max_rate)
        self.bar = ipywidgets.IntProgress(value=0, min=0, max=max(total, 1))
        self.label = ipywidgets.Label(value=f"0/{total}")
        self.stop_button = ipywidgets.Button(description="Stop", icon="stop", button_style="warning")
        self.stop_button.add_class("mol-stop")
        self.stop_button.on_click(self._on_stop)
        self.box = ipywidgets.HBox([self.bar, self.label, self.stop_button])
        self.box.add_class("mol-progress")
        self.live_stop = route_to_subshell(self.stop_button)
        if not self.live_stop and display_now:
            self.stop_button.disabled = True
            self.stop_button.tooltip = "This kernel handles clicks only between cells: use the notebook's interrupt button (■)."
        if display_now:
            from IPython.display import display

            # Stable text next to the widget view: nbval compares text/plain.
            bundle = dict(self.box._repr_mimebundle_() or {})
            bundle["text/plain"] = f"training progress ({total} steps)"
            display(bundle, raw=True)

    def _on_stop(self, _button: ipywidgets.Button) -> None:
        self.stop.request("Stop button")
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping…"

    def text(self, now: float) -> str:
        """The label's text at time ``now``."""
        elapsed, left = self.times(now)
        loss = "" if self.loss is None else f" · loss {self.loss:.4f}"
        return (f"{self.step}/{self.total}{loss} · {format_seconds(elapsed)} < "
                f"{format_seconds(left)} · {self.device}")

    def draw(self, now: float) -> None:
        """Move the bar and rewrite the label."""
        self.bar.value = min(self.step, self.bar.max)
        self.label.value = self.text(now)

    def close(self) -> None:
        """Show the final state; the bar turns green, or orange if stopped early.

        The button ends disabled, reading "Stopped" after a stop, "Done" otherwise.
        """
        self.bar.value = min(self.step, self.bar.max)
        self.label.value = self.text(self.clock()) + (f" · stopped ({self.stop.reason})" if self.stop.requested else "")
        self.bar.bar_style = "warning" if self.stop.requested and self.step < self.total else "success"
        self.stop_button.disabled = True
        self.stop_button.description = "Stopped" if self.stop.requested else "Done"
        self.stop_button.icon = "stop" if self.stop.requested else "check"
        self.stop_button.button_style = "warning" if self.stop.requested else ""
        self.stop_button.tooltip = ""

    def fail(self, error: BaseException) -> None:
        """Show that the run raised: a red bar, the error in the label, "Failed" on the button."""
        self.bar.value = min(self.step, self.bar.max)
        self.label.value = self.text(self.clock()) + " · " + failure_text(error)
        self.bar.bar_style = "danger"
        self.stop_button.disabled = True
        self.stop_button.description = "Failed"
        self.stop_button.icon = "times"
        self.stop_button.button_style = "danger"
        self.stop_button.tooltip = failure_text(error)
