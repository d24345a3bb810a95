"""TrainingMonitorWidget: live figures of a History while training runs.

The figure is drawn with matplotlib's Agg backend and sent as PNG bytes to an
``ipywidgets.Image``: that needs no interactive backend, works the same in
JupyterLab, VS Code and Voila, and an ``Image`` view is plain data that nbval
ignores. (An ipympl canvas would also redraw live but leaves nothing behind
where no front end runs.)

Redraws are driven by the history's subscription, not by polling, and are
throttled by time: at most ``max_rate`` a second, and never more often than
keeps drawing under ``budget`` (a fraction) of the elapsed time, however fast
the steps are. The end of a run always redraws.

Where no live front end exists (nbval, a notebook exported to HTML or shown
on GitHub), the output keeps a static PNG of the final state: the monitor is
displayed with a display id and, when the run ends, that output is updated
with a bundle holding the widget view and the final PNG.

To watch a run another process writes (a terminal, a cluster job)::

    history = History.follow("run.csv")
    history.watch()                      # refreshes in a background thread
    TrainingMonitorWidget(history)       # the cell returns; the figure keeps updating

Example:
    >>> from multiopt_lab.core.history import History
    >>> history = History()
    >>> monitor = TrainingMonitorWidget(history)
    >>> history.record(1, loss=1.0)
    >>> monitor.redraws >= 1
    True
"""

from __future__ import annotations

import base64
import html
import io
import threading
import time
from collections.abc import Callable

import ipywidgets
from matplotlib.figure import Figure

from multiopt_lab.core.history import SCALAR_GROUP, TOTAL_GROUP, History
from multiopt_lab.plots.overview import plot_training
from multiopt_lab.plots.style import group_colour_map

__all__ = ["TrainingMonitorWidget", "last_values_html"]

_METRIC_ORDER = ("loss", "update_norm", "grad_norm", "param_norm", "update_ratio", "learning_rate")


def _format(value: float) -> str:
    return f"{value:.4g}"


def last_values_html(history: History, run: str | None = None) -> str:
    """An HTML table of the last value of every metric, one row per group.

    Example:
        >>> h = History(); h.record(1, loss=0.5)
        >>> "0.5" in last_values_html(h)
        True
    """
    run = run if run is not None else history.current_run
    if run is None or run not in history.runs:
        return '<div class="mol-monitor-empty">no run recorded yet</div>'
    values = history.last_values(run)
    colours = group_colour_map(history, run)
    groups = [g for g in history.labels(run) if g in values]
    groups += [g for g in (TOTAL_GROUP, SCALAR_GROUP) if g in values]
    metrics = [m for m in _METRIC_ORDER if any(m in values[g] for g in groups)]
    metrics += sorted({m for g in groups for m in values[g]} - set(metrics))
    step = history.last_step(run)
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    rows = []
    for group in groups:
        swatch = f'<span style="display:inline-block;width:0.8em;height:0.8em;background:{colours.get(group, "#8C8C8C")};margin-right:0.4em"></span>'
        name = "loss / scalars" if group == SCALAR_GROUP else group
        cells = "".join(f"<td>{_format(values[group][m]) if m in values[group] else ''}</td>" for m in metrics)
        rows.append(f'<tr data-group="{html.escape(group)}"><td>{swatch}{html.escape(name)}</td>{cells}</tr>')
    return (
        f'<table class="mol-monitor-values"><caption>{html.escape(run)}, step {step}</caption>'
        f"<tr><th>group</th>{head}</tr>{''.join(rows)}</table>"
    )


class TrainingMonitorWidget(ipywidgets.VBox):
    """Loss and per-group metrics of a History, redrawn while it grows.

    Args:
        history (History): The history to watch (recording or following a file).
        run (str, optional): Show this run; default: the current run.
        max_rate (float): Redraws per second at most. Default: ``4``.
        budget (float): Largest share of time spent drawing. Default: ``0.025``.
        smoothing (float): Loss smoothing in ``[0, 1)``. Default: ``0``.
        theme (str, optional): ``"light"``, ``"dark"`` or ``None``. Default: ``None``.
        dpi (int): Resolution of the PNG. Default: ``72``.
        clock (Callable[[], float]): Time source (tests inject one). Default: ``time.perf_counter``.

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
    ) -> None:
        if max_rate <= 0 or not 0 < budget <= 1:
            raise ValueError(f"need max_rate > 0 and 0 < budget <= 1, got max_rate={max_rate}, budget={budget}")
        self.image = ipywidgets.Image(format="png", layout=ipywidgets.Layout(max_width="100%"))
        self.table = ipywidgets.HTML()
        self.image.add_class("mol-monitor-figure")
        self.table.add_class("mol-monitor-table")
        super().__init__(children=[self.image, self.table])
        self.add_class("mol-monitor")
        self.history = history
        self.run = run
        self.min_interval = 1.0 / max_rate
        self.budget = budget
        self.smoothing = smoothing
        self.theme = theme
        self.dpi = dpi
        self.clock = clock
        self.figure = Figure(figsize=(9.0, 5.4))
        self.redraws = 0
        self.pending = False
        self._last_draw = float("-inf")
        self._draw_cost = 0.0
        self._display_handle = None
        # History.watch() notifies from its own thread: one drawing at a time.
        self._draw_lock = threading.Lock()
        self._unsubscribe = history.subscribe(self._on_event)
        self.redraw()

    @property
    def interval(self) -> float:
        """Seconds between redraws now: ``1 / max_rate``, or longer when drawing is slow."""
        return max(self.min_interval, self._draw_cost / self.budget)

    def _on_event(self, history: History, event: str) -> None:
        if event == "end_run":
            self.redraw()
            self._update_display()
            return
        now = self.clock()
        if now - self._last_draw >= self.interval:
            self.redraw()
        else:
            self.pending = True

    def redraw(self) -> None:
        """Draw the figure and the table now (whatever the throttle says)."""
        with self._draw_lock:
            start = self.clock()
            plot_training(self.history, run=self.run, smoothing=self.smoothing, figure=self.figure, theme=self.theme)
            self.image.value = self.png()
            self.table.value = last_values_html(self.history, self.run)
            end = self.clock()
            self._draw_cost = max(end - start, 0.0)
            self._last_draw = end
            self.redraws += 1
            self.pending = False

    def flush(self) -> None:
        """Redraw if records arrived since the last redraw."""
        if self.pending:
            self.redraw()

    def png(self) -> bytes:
        """The current figure as PNG bytes."""
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()

    def close(self) -> None:
        """Stop watching the history and close the widget."""
        unsubscribe = getattr(self, "_unsubscribe", None)  # absent if __init__ failed
        if unsubscribe is not None:
            unsubscribe()
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
