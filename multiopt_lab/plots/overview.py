"""One figure with the four views of a run (what the training monitor shows).

Example:
    >>> from multiopt_lab.core.history import History
    >>> history = History(); history.record(1, loss=2.0)
    >>> [ax.get_title() for ax in plot_training(history).axes]
    ['loss (run1)']
"""

from __future__ import annotations

import matplotlib
from matplotlib.figure import Figure

from multiopt_lab.core.history import SCALAR_GROUP, History
from multiopt_lab.plots.figures import (
    REFERENCE_RATIO,
    plot_group_metric,
    plot_loss,
)
from multiopt_lab.plots.style import LabFigure, theme_context

__all__ = ["plot_training", "has_group_metrics"]


def has_group_metrics(history: History, run: str | None = None) -> bool:
    """Whether ``run`` has any per-group optimizer metric recorded."""
    run = run if run is not None else history.current_run
    if run is None:
        return False
    return any(group != SCALAR_GROUP for group in history.last_values(run))


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
        figure (Figure, optional): Clear and reuse this figure (the monitor
            redraws into the same one). Default: a new figure.
        theme (str, optional): ``"light"``, ``"dark"`` or ``None``.
    """
    with theme_context(theme):
        if figure is None:
            figure = LabFigure(figsize=(10.0, 6.0), layout="constrained")
        else:
            figure.clear()
            if theme is not None:
                figure.set_facecolor(matplotlib.rcParams["figure.facecolor"])
        if not has_group_metrics(history, run):
            plot_loss(history, run=run, smoothing=smoothing, ax=figure.add_subplot())
        else:
            loss_ax, norm_ax, ratio_ax, rate_ax = figure.subplots(2, 2).ravel()
            plot_loss(history, run=run, smoothing=smoothing, ax=loss_ax)
            plot_group_metric(history, "update_norm", run=run, ax=norm_ax, title="update norm")
            plot_group_metric(
                history, "update_ratio", run=run, ax=ratio_ax, log=True, reference=REFERENCE_RATIO, title="update / parameter ratio"
            )
            plot_group_metric(history, "learning_rate", run=run, ax=rate_ax, title="learning rate")
        if figure.get_layout_engine() is None:
            # Fixed margins: a constrained layout doubles the cost of a redraw.
            figure.subplots_adjust(left=0.08, right=0.98, top=0.93, bottom=0.09, hspace=0.45, wspace=0.25)
        return figure

