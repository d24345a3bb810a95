"""One figure with the four views of a run (what the training monitor shows).

Example:
    >>> from multiopt_lab.training.history import History
    >>> history = History(); history.record(1, loss=2.0)
    >>> [ax.get_title() for ax in plot_training(history).axes]
    ['loss (run1)']
"""

from __future__ import annotations

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

from multiopt_lab.training.history import SCALAR_GROUP, History
from multiopt_lab.plots.figures import (
    REFERENCE_RATIO,
    plot_group_metric,
    plot_loss,
)
from multiopt_lab.plots.live import layout_key, remember_layout, update_in_place
from multiopt_lab.plots.style import LabFigure, theme_context

__all__ = ["plot_training", "has_group_metrics"]


def has_group_metrics(history: History, run: str | None = None) -> bool:
    """Whether ``run`` has any per-group optimizer metric recorded."""
    run = run if run is not None else history.current_run
    if run is None:
        return False
    return any(group != SCALAR_GROUP for group in history.last_values(run))


def _fewer_ticks(figure: Figure) -> None:
    # Tick labels are most of the cost of drawing (the monitor redraws every
    # second): four per axis, no minor ticks on log axes, no step label on top.
    for ax in figure.axes:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        if ax.get_yscale() == "log":
            ax.yaxis.set_minor_locator(NullLocator())
        elif not isinstance(ax.yaxis.get_major_locator(), FixedLocator):  # steady_limits' ticks stay
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        if ax.get_subplotspec().is_first_row():
            ax.set_xlabel("")


def plot_training(
    history: History,
    *,
    run: str | None = None,
    smoothing: float = 0.0,
    figure: Figure | None = None,
    theme: str | None = None,
) -> Figure:
    """Loss, update norm, update-to-parameter ratio and learning rate of a run.

    With only the loss recorded (a plain ``mlx.optimizers`` optimizer) the
    figure has the loss alone.

    Args:
        history (History): What to plot.
        run (str, optional): Default: the current run.
        smoothing (float): Loss smoothing in ``[0, 1)``. Default: ``0``.
        figure (Figure, optional): Reuse this figure (the monitor redraws
            into the same one): its lines are moved when only the data
            changed, else it is cleared and drawn again. Default: a new figure.
        theme (str, optional): ``"light"``, ``"dark"`` or ``None``.
    """
    key = layout_key(history, run, smoothing, theme)
    with theme_context(theme):
        if figure is None:
            figure = LabFigure(figsize=(10.0, 6.0), layout="constrained")
        elif update_in_place(figure, key, history, run, smoothing):
            return figure  # same layout, new data: the lines moved
        else:
            figure.clear()
            if theme is not None:
                figure.set_facecolor(matplotlib.rcParams["figure.facecolor"])
        if not has_group_metrics(history, run):
            plot_loss(history, run=run, smoothing=smoothing, ax=figure.add_subplot())
        else:
            # One step axis for all four: tick labels only on the bottom row.
            loss_ax, norm_ax, ratio_ax, rate_ax = figure.subplots(2, 2, sharex=True).ravel()
            plot_loss(history, run=run, smoothing=smoothing, ax=loss_ax)
            plot_group_metric(history, "update_norm", run=run, ax=norm_ax, title="update norm")
            plot_group_metric(
                history, "update_ratio", run=run, ax=ratio_ax, log=True, reference=REFERENCE_RATIO, title="update / parameter ratio"
            )
            plot_group_metric(history, "learning_rate", run=run, ax=rate_ax, title="learning rate")
            _fewer_ticks(figure)
        if figure.get_layout_engine() is None:
            # Fixed margins: a constrained layout doubles the cost of a redraw.
            figure.subplots_adjust(left=0.08, right=0.98, top=0.93, bottom=0.09, hspace=0.25, wspace=0.25)
        remember_layout(figure, key)
        return figure

