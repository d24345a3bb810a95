"""Figures of a History: loss, per-group metrics, several runs overlaid.

Each function returns a ``matplotlib.figure.Figure``, draws into ``ax`` when
given one, colours each group as the parameter tree does (by its position in
the partition) and takes ``theme=None | "light" | "dark"``.

Example:
    >>> from multiopt_lab.training.history import History
    >>> history = History()
    >>> history.start_run("demo", {"labels": ["matrices", "vectors"]})
    'demo'
    >>> for step in range(1, 4):
    ...     history.record(step, loss=1 / step, metrics={"matrices": {"update_ratio": 1e-3}, "vectors": {"update_ratio": 1e-4}})
    >>> figure = plot_update_ratios(history)
    >>> [line.get_label() for line in figure.axes[0].get_lines()][:2]
    ['matrices', 'vectors']
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from multiopt_lab.training.history import SCALAR_GROUP, TOTAL_GROUP, History
from multiopt_lab.palette import FALLBACK_GREY, group_colour
from multiopt_lab.plots.style import group_colour_map, new_axes, no_data, series, smooth, steady_limits, themed

__all__ = [
    "plot_loss",
    "plot_group_metric",
    "plot_update_norms",
    "plot_update_ratios",
    "plot_grad_norms",
    "plot_learning_rates",
    "plot_runs",
]

#: Where a healthy update-to-parameter ratio roughly sits (Karpathy's rule of thumb).
REFERENCE_RATIO = 1e-3


def _current(history: History, run: str | None) -> str | None:
    if run is not None:
        return run
    return history.current_run


@themed
def plot_loss(history: History, *, run: str | None = None, metric: str = "loss", smoothing: float = 0.0, log: bool = False, ax: Axes | None = None) -> Figure:
    """The loss (or any scalar recorded in group ``"-"``) against the step.

    Args:
        history (History): What to plot.
        run (str, optional): Default: the current run.
        metric (str): Default: ``"loss"``.
        smoothing (float): Exponential smoothing in ``[0, 1)``; with smoothing
            the raw curve stays, faint, behind the smoothed one. Default: ``0``.
        log (bool): Log-scale y axis. Default: ``False``.
        ax (Axes, optional): Draw here instead of a new figure.
        theme (str, optional): ``"light"``, ``"dark"`` or ``None`` (current style).
    """
    figure, ax = new_axes(ax)
    run = _current(history, run)
    found = series(history.frame, metric, run=run, group=SCALAR_GROUP) if run else {}
    ax.set_title(metric if run is None else f"{metric} ({run})")
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    if not found:
        no_data(ax, metric)
        return figure
    steps, values = found[SCALAR_GROUP]
    colour = group_colour(0)
    if smoothing:
        ax.plot(steps, values, color=colour, alpha=0.25, linewidth=1, label=f"{metric} (raw)")
        ax.plot(steps, smooth(values, smoothing), color=colour, linewidth=1.8, label=f"{metric} (smoothed {smoothing:g})")
    else:
        ax.plot(steps, values, color=colour, linewidth=1.5, label=metric)
    if log:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    return figure


@themed
def plot_group_metric(
    history: History,
    metric: str,
    *,
    run: str | None = None,
    log: bool = False,
    include_total: bool = False,
    reference: float | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """One line per parameter group for ``metric`` (e.g. ``"update_norm"``).

    Args:
        history (History): What to plot.
        metric (str): A metric of the optimizer (``update_norm``,
            ``grad_norm``, ``param_norm``, ``update_ratio``, ``learning_rate``).
        run (str, optional): Default: the current run.
        log (bool): Log-scale y axis. Default: ``False``.
        include_total (bool): Also draw group ``"total"`` (grey, dashed). Default: ``False``.
        reference (float, optional): Draw a dotted grey line at this height. Default: ``None``.
        ax (Axes, optional): Draw here instead of a new figure.
        title (str, optional): Default: the metric's name.
        theme (str, optional): ``"light"``, ``"dark"`` or ``None``.
    """
    figure, ax = new_axes(ax)
    run = _current(history, run)
    ax.set_title(title or metric.replace("_", " "))
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    found = series(history.frame, metric, run=run) if run else {}
    found.pop(SCALAR_GROUP, None)
    total = found.pop(TOTAL_GROUP, None)
    if not found and total is None:
        no_data(ax, metric)
        return figure
    colours = group_colour_map(history, run)
    order = [label for label in history.labels(run) if label in found]
    for label in order:
        steps, values = found[label]
        ax.plot(steps, values, color=colours[label], linewidth=1.5, label=label)
    if include_total and total is not None:
        ax.plot(*total, color=FALLBACK_GREY, linestyle="--", linewidth=1.2, label=TOTAL_GROUP)
    if reference is not None:
        ax.axhline(reference, color=FALLBACK_GREY, linestyle=":", linewidth=1.2, label=f"reference {reference:g}")
    if log:
        ax.set_yscale("log")
    else:
        steady_limits(ax)  # a constant learning rate reads 0.001, not 0.00096-0.00104
    ax.grid(True, alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize="small", frameon=False)
    return figure


def plot_update_norms(history: History, *, run: str | None = None, ax: Axes | None = None, theme: str | None = None) -> Figure:
    """Norm of each group's update per recorded step (see :func:`plot_group_metric`)."""
    return plot_group_metric(history, "update_norm", run=run, ax=ax, theme=theme, title="update norm")


def plot_grad_norms(history: History, *, run: str | None = None, ax: Axes | None = None, theme: str | None = None) -> Figure:
    """Norm of each group's gradient per recorded step, log scale."""
    return plot_group_metric(history, "grad_norm", run=run, ax=ax, theme=theme, log=True, title="gradient norm")


def plot_learning_rates(history: History, *, run: str | None = None, ax: Axes | None = None, theme: str | None = None) -> Figure:
    """Learning rate of each group per recorded step."""
    return plot_group_metric(history, "learning_rate", run=run, ax=ax, theme=theme, title="learning rate")


def plot_update_ratios(
    history: History,
    *,
    run: str | None = None,
    reference: float | None = REFERENCE_RATIO,
    ax: Axes | None = None,
    theme: str | None = None,
) -> Figure:
    """Update-to-parameter norm ratio per group, log scale, with a reference line.

    Args:
        reference (float, optional): Height of the dashed reference line
            (``None``: no line). Default: ``1e-3``.
    """
    return plot_group_metric(
        history, "update_ratio", run=run, ax=ax, theme=theme, log=True, reference=reference, title="update / parameter ratio"
    )


@themed
def plot_runs(
    history: History,
    metric: str = "loss",
    *,
    group: str = SCALAR_GROUP,
    runs: Sequence[str] | None = None,
    smoothing: float = 0.0,
    log: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """Several runs overlaid: one line per run for ``metric`` of ``group``.

    Runs take the palette's colours in the order given (a run is not a
    group, so these colours do not mean groups here).

    Args:
        metric (str): Default: ``"loss"``.
        group (str): ``"-"`` for the loss and scalars, a group label, or
            ``"total"``. Default: ``"-"``.
        runs (Sequence[str], optional): Default: every run.
        smoothing (float): Exponential smoothing in ``[0, 1)``. Default: ``0``.
        log (bool): Log-scale y axis. Default: ``False``.
        theme (str, optional): ``"light"``, ``"dark"`` or ``None``.
    """
    figure, ax = new_axes(ax)
    chosen = list(history.runs if runs is None else runs)
    missing = [name for name in chosen if name not in history.runs]
    if missing:
        raise KeyError(f"runs {missing} are not in this history; its runs are {list(history.runs)}")
    frame = history.frame
    where = "" if group == SCALAR_GROUP else f" of {group}"
    ax.set_title(f"{metric}{where}: {len(chosen)} runs")
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    for i, name in enumerate(chosen):
        found = series(frame, metric, run=name, group=group)
        if group in found:
            steps, values = found[group]
            ax.plot(steps, smooth(values, smoothing), color=group_colour(i), linewidth=1.5, label=name)
    if not ax.get_lines():
        no_data(ax, f"{metric}{where}")
        return figure
    if log:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", frameon=False)
    return figure
