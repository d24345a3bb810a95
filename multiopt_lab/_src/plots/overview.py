"""One figure with the four views of a run (what the training monitor shows).

Loss, update norm, update-to-parameter ratio and learning rate share one
step axis and one legend (the groups, and the reference ratio), placed above
the panels rather than on the data. The title names the run and the device
it ran on (from the run's metadata).
"""

from __future__ import annotations

from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

from multiopt_lab._src.training.history import SCALAR_GROUP, History
from multiopt_lab._src.plots.figures import (
    REFERENCE_RATIO,
    plot_group_metric,
    plot_loss,
)
from multiopt_lab._src.plots.fixed_layout import fit_layout, legend_fits_beside_title
from multiopt_lab._src.plots.live import GROUP_PANELS, layout_key, remember_layout, update_in_place
from multiopt_lab._src.device import describe_facts
from multiopt_lab._src.plots.style import LabFigure, checked_plot, theme_context

__all__ = ["plot_training", "has_group_metrics", "run_title", "placeholder"]

def run_title(history: History, run: str | None) -> str:
    """``"healthy · cpu (AMD EPYC)"``: the run and the device its metadata names.
    """
    run = run if run is not None else history.current_run
    if run is None or run not in history.runs:
        return "" if run is None else str(run)
    device = describe_facts(history.metadata(run))
    return f"{run} · {device}" if device else str(run)


def placeholder(figure: Figure, text: str) -> Figure:
    """Clear ``figure`` and say ``text`` in its middle, large, with no empty axes.
    """
    figure.clear()
    figure.text(0.5, 0.5, text, ha="center", va="center", fontsize=14,
                color=matplotlib.rcParams["text.color"], alpha=0.7, wrap=True)
    return figure


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
        spec = ax.get_subplotspec()
        if spec is not None and spec.is_first_row():
            ax.set_xlabel("")


def _legend(figure: Figure, fixed: bool, title: str) -> int:
    """One legend for the group panels (each group once, then the reference line).

    Returns the rows it takes under the title row of a fixed layout (0 or 1).
    """
    handles: list[Line2D] = []
    labels: list[str] = []
    for ax in figure.axes[1:]:
        for line in ax.get_lines():
            label = str(line.get_gid() or line.get_label())
            if label not in labels and not label.startswith("_"):
                handles.append(line)
                labels.append(label)
    if not handles:
        return 0
    options: dict[str, Any] = dict(ncols=len(labels), frameon=False, fontsize="small", handlelength=1.8, columnspacing=1.2)
    if not fixed:
        figure.legend(handles, labels, loc="outside upper right", **options)
        return 0
    width, height = figure.get_size_inches() * figure.dpi
    if legend_fits_beside_title(figure, title, labels):
        figure.legend(handles, labels, loc="upper right", bbox_to_anchor=(1 - 8 / width, 1 - 2 / height),
                      borderaxespad=0.2, **options)
        return 0
    figure.legend(handles, labels, loc="upper left", bbox_to_anchor=(2 / width, 1 - 22 / height),
                  borderaxespad=0.2, **options)
    return 1


@checked_plot
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
    figure has the loss alone. The title names the run and its device; one
    legend above the panels names the groups.

    Args:
        history (History): What to plot.
        run (str, optional): Default: the current run.
        smoothing (float): Loss smoothing in ``[0, 1)``. Default: ``0``.
        figure (Figure, optional): Reuse this figure (the monitor redraws
            into the same one): its lines are moved when only the data
            changed, else it is cleared and drawn again. A figure without a
            layout engine gets margins fitted to its size in pixels.
            Default: a new figure.
        theme (str, optional): ``"light"``, ``"dark"`` or ``None``.

    Example:
        >>> h = History(); h.start_run("r", {"labels": ["a"]})
        'r'
        >>> h.record(1, loss=1.0, metrics={"a": {"update_norm": 0.1, "update_ratio": 1e-3}})
        >>> [t.get_text() for t in plot_training(h).legends[0].get_texts()]
        ['a', 'reference 0.001']
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
        fixed = figure.get_layout_engine() is None
        if not has_group_metrics(history, run):
            ax = figure.add_subplot()
            plot_loss(history, run=run, smoothing=smoothing, ax=ax)
            ax.set_title("loss")
            rows = 1
        else:
            # One step axis for all four: tick labels only on the bottom row.
            loss_ax, norm_ax, ratio_ax, rate_ax = figure.subplots(2, 2, sharex=True).ravel()
            plot_loss(history, run=run, smoothing=smoothing, ax=loss_ax)
            loss_ax.set_title("loss")
            titles = {"update_norm": "update norm", "update_ratio": "update / parameter ratio",
                      "learning_rate": "learning rate"}
            for ax, metric in zip((norm_ax, ratio_ax, rate_ax), GROUP_PANELS):
                plot_group_metric(history, metric, run=run, ax=ax, title=titles[metric], legend=False,
                                  log=metric == "update_ratio",
                                  reference=REFERENCE_RATIO if metric == "update_ratio" else None)
            _fewer_ticks(figure)
            rows = 2
        title = run_title(history, run)
        legend_rows = _legend(figure, fixed, title) if rows == 2 else 0
        if title:
            if fixed:
                width, height = figure.get_size_inches() * figure.dpi
                figure.suptitle(title, x=6 / width, y=1 - 6 / height, ha="left", va="top", fontsize="medium")
            else:
                figure.suptitle(title, x=0.01, ha="left", fontsize="medium")
        if fixed:
            fit_layout(figure, rows, rows, legend_rows)
        remember_layout(figure, key, legend_rows)
        return figure
