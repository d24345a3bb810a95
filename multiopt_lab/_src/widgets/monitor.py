"""TrainingMonitorWidget: live figures of a History while training runs.

The figure is drawn with matplotlib's Agg backend and sent as PNG bytes to a
:class:`~multiopt_lab._src.widgets.figure_view.FigureView`: that needs no
interactive backend, works the same in JupyterLab, VS Code and Voila, and
the view is plain data that nbval ignores. (An ipympl canvas would also
redraw live but leaves nothing behind where no front end runs.) The view
reports the width it is given and the page's theme: the figure is drawn to
that width (its text stays legible in a narrow column) and in the dark
theme's colours when the page is dark. Its title names the run and the
device the run's metadata records.

Redraws are driven by the history's subscription, not by polling, and are
paced by a :class:`~multiopt_lab._src.live.monitor_pacing.RedrawPacer`: at most
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
on GitHub), the output keeps a static PNG of the final state and a line of
text: the monitor is displayed with a display id and, when the run ends,
that output is updated with a bundle holding the widget view, the final PNG
and the text.

To watch a run another process writes (a terminal, a cluster job)::

    history = History.follow("run.csv")
    history.watch()                      # refreshes in a background thread
    TrainingMonitorWidget(history)       # the cell returns; the figure keeps updating
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import ipywidgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from multiopt_lab._src.arguments import checked, function, is_flag, is_text, number, optional
from multiopt_lab._src.training.arguments import required_history
from multiopt_lab._src.text_fit import DEFAULT_WIDTH, clip
from multiopt_lab._src.training.history import SCALAR_GROUP, TOTAL_GROUP, History
from multiopt_lab._src.training.loop_activity import is_training
from multiopt_lab._src.plots.live import remember_layout
from multiopt_lab._src.plots.overview import placeholder, plot_training, run_title
from multiopt_lab._src.plots.style import retheme
from multiopt_lab._src.live.monitor_pacing import RedrawPacer
from multiopt_lab._src.widgets.figure_view import FigureView
from multiopt_lab._src.widgets.monitor_table import last_values_html, top_parameters_html
from multiopt_lab._src.widgets.editor_parts import close_inside
from multiopt_lab._src.widgets.static_forms import widget_bundle
from multiopt_lab._src.widgets.subshell import route_to_subshell

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
        theme (str, optional): ``"light"``, ``"dark"`` or ``None``: follow the
            page's theme (as the view reports it). Default: ``None``.
        width (int): Width of the figure in pixels until the view reports the
            width it has (then the figure follows it). Default: ``720``.
        dpi (int): Pixels per inch of the PNG: text of 10 points is
            ``10 * dpi / 72`` pixels tall. Default: ``80``.
        clock (Callable[[], float]): Time source (tests inject one). Default: ``time.perf_counter``.
        background (bool): Draw on a background thread (the training thread
            only sets a flag); not with a ``theme``, which changes matplotlib's
            global settings while drawing. Default: ``False``.
        top_k (int): With per-parameter metrics (``per_parameter=True``), a
            table of the ``top_k`` parameters whose update ratio is farthest
            from their group's median, at the last recorded step (``0``: none).
            Default: ``5``.

    Example:
        >>> history = History()
        >>> monitor = TrainingMonitorWidget(history)   # in a notebook: display(monitor), then train
        >>> history.start_run("demo", {"labels": ["muon", "adamw"]})
        'demo'
        >>> history.record(1, loss=2.0, metrics={"muon": {"update_norm": 0.4}, "adamw": {"update_norm": 0.3}})
        >>> monitor.text()
        "Training monitor: run 'demo', 1 steps recorded, loss and 2 groups' metrics"
    """

    @checked(history=required_history, run=optional(is_text), max_rate=number(low=0, low_open=True),
             budget=number(low=0, low_open=True), smoothing=number(low=0, high=1, high_open=True),
             width=number(low=1, integer=True), dpi=number(low=1, integer=True),
             clock=function("a function () -> seconds"), max_interval=number(low=0, low_open=True),
             background=is_flag)
    def __init__(
        self,
        history: History,
        *,
        run: str | None = None,
        max_rate: float = 4.0,
        budget: float = 0.025,
        smoothing: float = 0.0,
        theme: str | None = None,
        width: int = 720,
        dpi: int = 80,
        clock: Callable[[], float] = time.perf_counter,
        max_interval: float = 1.0,
        background: bool = False,
        top_k: int = 5,
    ) -> None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise ValueError(f"top_k must be an int >= 0, found {top_k!r}")
        self.top_k = top_k
        if background and theme is not None:
            raise ValueError(f"background drawing cannot use a theme (got theme={theme!r}): "
                             "a theme changes matplotlib's global settings; pass background=False")
        self.pacer = RedrawPacer(self._draw, max_rate=max_rate, budget=budget, max_interval=max_interval,
                                 clock=clock, background=background)
        self.image = FigureView(alt="loss and per-group metrics")
        self.table = ipywidgets.HTML()
        self.parameters_table = ipywidgets.HTML()
        self.image.add_class("mol-monitor-figure")
        self.table.add_class("mol-monitor-table")
        self.parameters_table.add_class("mol-monitor-parameters")
        super().__init__(children=[self.image, self.table, self.parameters_table])
        self.add_class("mol-monitor")
        self.history = history
        #: The run shown: pinned at creation, or by the first run started after it.
        self.run = run if run is not None else history.current_run
        self.smoothing = smoothing
        self.theme = theme
        self.dpi = dpi
        # One figure and one Agg canvas for the widget's life: no new canvas per redraw.
        self.figure = Figure(figsize=_size_inches(width, dpi), dpi=dpi)
        self._canvas = FigureCanvasAgg(self.figure)
        self._drawn_dark = False
        self._display_handle = None
        self._unsubscribe = history.subscribe(self._on_event)
        self.image.observe(self._on_view_change, ["width", "dark"])
        # While a loop trains, the view's reports (its width once shown, a theme
        # switch) are handled on a kernel subshell, so the figure fits at once.
        route_to_subshell(self.image, when=is_training)
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
        waiting = self._waiting_for()
        dark = self.theme == "dark" or (self.theme is None and self.image.dark)
        if waiting:
            placeholder(self.figure, waiting)
            remember_layout(self.figure, None)  # drawn by hand: the next drawing starts afresh
            self._drawn_dark = False
        else:
            first_axes = self.figure.axes[:1]
            plot_training(self.history, run=self.run, smoothing=self.smoothing, figure=self.figure, theme=self.theme)
            if self.figure.axes[:1] != first_axes:  # drawn afresh, in the light theme's colours
                self._drawn_dark = False
        if self.theme is None and dark != self._drawn_dark:
            # Recolour rather than draw in a theme: no global matplotlib setting
            # changes, so this is safe on the background thread too.
            retheme(self.figure, "dark" if dark else "light")
            self._drawn_dark = dark
        self.image.png = self._render_png()
        self.table.value = last_values_html(self.history, self.run)
        top = top_parameters_html(self.history, self.run, self.top_k) if self.top_k else ""
        if top != self.parameters_table.value:
            self.parameters_table.value = top

    def _waiting_for(self) -> str:
        """What the placeholder says while there is nothing to draw; ``""`` once there is."""
        if self.run is None:
            return "Waiting for a run to record its first step"
        if self.run not in self.history.runs:
            return f"Waiting for run {self.run!r} to start"
        if self.history.last_step(self.run) is None:
            return f"Waiting for run {self.run!r} to record its first step"
        return ""

    def _on_view_change(self, change) -> None:
        if change["name"] == "width":
            width = min(max(int(change["new"]), 320), 1600)
            if width == round(self.figure.get_figwidth() * self.dpi) or change["new"] <= 0:
                return
            with self.pacer.lock:
                self.figure.set_size_inches(*_size_inches(width, self.dpi))
                remember_layout(self.figure, None)  # margins depend on the size: lay it out again
        elif self.theme is not None:
            return  # a fixed theme does not follow the page
        self.redraw()

    def text(self) -> str:
        """What the monitor shows, in a line of text (a saved notebook's text form).

        Example:
            >>> TrainingMonitorWidget(History()).text()
            'Training monitor: waiting for a run to record its first step'
        """
        waiting = self._waiting_for()
        if waiting:
            return "Training monitor: " + waiting[0].lower() + waiting[1:]
        steps = self.history.frame
        steps = steps[steps["run"].values == self.run]["step"].nunique()
        groups = [g for g in self.history.labels(self.run) if g not in (SCALAR_GROUP, TOTAL_GROUP)]
        shown = f"loss and {len(groups)} groups' metrics" if groups else "loss"
        parameters = len(self.history.parameter_groups(self.run))
        if parameters:
            shown += f" and {parameters} parameters' metrics"
        run = clip(repr(self.run), DEFAULT_WIDTH - 70)  # the line fits the text forms' width
        return f"Training monitor: run {run}, {steps:,} steps recorded, {shown}"

    @property
    def title(self) -> str:
        """The figure's title: the run and its device (``"demo · cpu (AMD EPYC)"``)."""
        return run_title(self.history, self.run)

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
        return f"TrainingMonitorWidget({self.text()})"

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return widget_bundle(self, self.text(), png=self.image.png)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        self._display_handle = display(self._repr_mimebundle_(), raw=True, display_id=True)

    def _update_display(self) -> None:
        if self._display_handle is not None:
            self._display_handle.update(self._repr_mimebundle_(), raw=True)


def _size_inches(width: int, dpi: int) -> tuple[float, float]:
    """A figure ``width`` pixels wide, taller in proportion when narrow (four panels need the room)."""
    height = min(max(width * (0.78 if width < 640 else 0.6), 300), 600)
    return width / dpi, height / dpi
