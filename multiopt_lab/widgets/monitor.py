"""TrainingMonitorWidget: live figures of a History while training runs.

The figure is drawn with matplotlib's Agg backend and sent as PNG bytes to an
``ipywidgets.Image``: that needs no interactive backend, works the same in
JupyterLab, VS Code and Voila, and an ``Image`` view is plain data that nbval
ignores. (An ipympl canvas would also redraw live but leaves nothing behind
where no front end runs.)

Redraws are driven by the history's subscription, not by polling, and are
paced by a :class:`~multiopt_lab.live.monitor_pacing.RedrawPacer`: at most
``max_rate`` a second, at least once a second while data arrives, and in
between as often as keeps drawing under ``budget`` of the time. A redraw
moves the lines of the same figure rather than plotting it again (about
0.06 s on a 2-core CPU, so about 5 % of the time at most while data arrives).
``background=True`` draws on a thread of its own instead; it pays only where a
core is free (here it measured no better). The end of a run always redraws,
at once.

A monitor shows one run: the one named, or else the run current when it was
made (or the first one started after it). Later runs in the same history do
not take it over, so each monitor in a notebook keeps its own run's picture.

Where no live front end exists (nbval, a notebook exported to HTML or shown
on GitHub), the output keeps a static PNG of the final state: the monitor is
displayed with a display id and, when the run ends, that output is updated
with a bundle holding the widget view and the final PNG.

To watch a run another process writes (a terminal, a cluster job)::

    history = History.follow("run.csv")
    history.watch()                      # refreshes in a background thread
    TrainingMonitorWidget(history)       # the cell returns; the figure keeps updating

Example:
    >>> from multiopt_lab.training.history import History
    >>> history = History()
    >>> monitor = TrainingMonitorWidget(history)
    >>> history.record(1, loss=1.0)
    >>> monitor.redraws >= 1
    True
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable

import ipywidgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from multiopt_lab.training.history import History
from multiopt_lab.plots.live import remember_layout
from multiopt_lab.plots.overview import plot_training
from multiopt_lab.plots.style import no_data
from multiopt_lab.live.monitor_pacing import RedrawPacer
from multiopt_lab.widgets.monitor_table import last_values_html
from multiopt_lab.widgets.editor_parts import close_inside

__all__ = ["TrainingMonitorWidget", "last_values_html"]


class TrainingMonitorWidget(ipywidgets.VBox):
    """Loss and per-group metrics of a History, redrawn while it grows.

    Args:
        history (History): The history to watch (recording or following a file).
        run (str, optional): Show this run (it may start later). Default: the
            run current now, or else the first one started after the monitor.
        max_rate (float): Redraws per second at most. Default: ``4``.
        budget (float): Share of time spent drawing aimed at, when drawing is
            slow. Default: ``0.025``.
        max_interval (float): Longest wait between redraws while data arrives,
            whatever the budget. Default: ``1.0``.
        smoothing (float): Loss smoothing in ``[0, 1)``. Default: ``0``.
        theme (str, optional): ``"light"``, ``"dark"`` or ``None``. Default: ``None``.
        dpi (int): Resolution of the PNG. Default: ``72``.
        clock (Callable[[], float]): Time source (tests inject one). Default: ``time.perf_counter``.
        background (bool): Draw on a background thread (the training thread
            only sets a flag); not with a ``theme``, which changes matplotlib's
            global settings while drawing. Default: ``False``.

    Example:
        >>> history = History()                                      # doctest: +SKIP
        >>> display(TrainingMonitorWidget(history))                  # doctest: +SKIP
        >>> train(model, optimizer, loss_fn, batches, 300, history=history)  # doctest: +SKIP
    """

    def __init__(
        self,
        history: History,
        *,
        run: str | None = None,
        max_rate: float = 4.0,
        budget: float = 0.025,
        smoothing: float = 0.0,
        theme: str | None = None,
        dpi: int = 72,
        clock: Callable[[], float] = time.perf_counter,
        max_interval: float = 1.0,
        background: bool = False,
    ) -> None:
        if background and theme is not None:
            raise ValueError(f"background drawing cannot use a theme (got theme={theme!r}): "
                             "a theme changes matplotlib's global settings; pass background=False")
        self.pacer = RedrawPacer(self._draw, max_rate=max_rate, budget=budget, max_interval=max_interval,
                                 clock=clock, background=background)
        self.image = ipywidgets.Image(format="png", layout=ipywidgets.Layout(max_width="100%"))
        self.table = ipywidgets.HTML()
        self.image.add_class("mol-monitor-figure")
        self.table.add_class("mol-monitor-table")
        super().__init__(children=[self.image, self.table])
        self.add_class("mol-monitor")
        self.history = history
        #: The run shown: pinned at creation, or by the first run started after it.
        self.run = run if run is not None else history.current_run
        self.smoothing = smoothing
        self.theme = theme
        self.dpi = dpi
        # One figure and one Agg canvas for the widget's life: no new canvas per redraw.
        self.figure = Figure(figsize=(9.0, 5.4), dpi=dpi)
        self._canvas = FigureCanvasAgg(self.figure)
        self._display_handle = None
        self._unsubscribe = history.subscribe(self._on_event)
        self.redraw()

    @property
    def redraws(self) -> int:
        """How many times the figure was drawn."""
        return self.pacer.drawings

    @property
    def pending(self) -> bool:
        """Whether records arrived since the last redraw."""
        return self.pacer.pending

    @property
    def interval(self) -> float:
        """Seconds between redraws now: from ``1 / max_rate`` up to ``max_interval``."""
        return self.pacer.interval

    @property
    def budget(self) -> float:
        """Share of time spent drawing aimed at when drawing is slow (settable)."""
        return self.pacer.budget

    @budget.setter
    def budget(self, value: float) -> None:
        if not 0 < value <= 1:
            raise ValueError(f"need 0 < budget <= 1, got {value}")
        self.pacer.budget = value

    def _on_event(self, history: History, event: str) -> None:
        if self.run is None:
            self.run = history.current_run  # the first run after the monitor was made
            if self.run is None:
                return
        if event != "refresh" and history.current_run != self.run:
            return  # another run's records: not ours to show
        if event == "end_run":
            self.redraw()  # at once, whatever the pacing: the last picture is the final state
            self._update_display()
            return
        self.pacer.poke()

    def redraw(self) -> None:
        """Draw the figure and the table now (whatever the pacing says)."""
        self.pacer.draw_now()

    def _draw(self) -> None:
        if self.run is not None and self.run not in self.history.runs:
            self.figure.clear()
            remember_layout(self.figure, None)  # drawn by hand: the next drawing starts afresh
            no_data(self.figure.add_subplot(), f"run {self.run!r}: it has not started yet, so nothing")
        else:
            plot_training(self.history, run=self.run, smoothing=self.smoothing, figure=self.figure, theme=self.theme)
        self.image.value = self._render_png()
        self.table.value = last_values_html(self.history, self.run)

    def flush(self) -> None:
        """Redraw if records arrived since the last redraw."""
        self.pacer.flush()

    def _render_png(self) -> bytes:
        self._canvas.draw()
        buffer = io.BytesIO()
        # Fast compression: the PNG is sent at every redraw and dropped at the next.
        Image.fromarray(np.asarray(self._canvas.buffer_rgba())).save(buffer, format="png", compress_level=1)
        return buffer.getvalue()

    def png(self) -> bytes:
        """The current figure as PNG bytes."""
        with self.pacer.lock:
            return self._render_png()

    def close(self) -> None:
        """Stop watching the history and close the widget."""
        unsubscribe = getattr(self, "_unsubscribe", None)  # absent if __init__ failed
        if unsubscribe is not None:
            unsubscribe()
        pacer = getattr(self, "pacer", None)
        if pacer is not None:
            pacer.close()
        close_inside(self)  # the image, the table and their layouts hold comms too
        super().close()

    # -- display -----------------------------------------------------------
    def __repr__(self) -> str:
        # Stable text: nbval compares text/plain, never the widget view.
        return "TrainingMonitorWidget(loss and per-group metrics, redrawn live)"

    def _bundle(self) -> dict:
        bundle = super()._repr_mimebundle_() or {}
        bundle = dict(bundle)
        bundle["text/plain"] = repr(self)
        bundle["image/png"] = base64.b64encode(self.image.value).decode("ascii")
        return bundle

    def _ipython_display_(self) -> None:
        from IPython.display import display

        self._display_handle = display(self._bundle(), raw=True, display_id=True)

    def _update_display(self) -> None:
        if self._display_handle is not None:
            self._display_handle.update(self._bundle(), raw=True)
