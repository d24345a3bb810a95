"""Figures of a History: loss, per-group metrics, several runs overlaid.

Each function returns a ``matplotlib.figure.Figure``, draws into ``ax`` when
given one, colours each group as the parameter tree does (by its position in
the partition) and takes ``theme=None | "light" | "dark"``.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from multiopt_lab._src.training.history import SCALAR_GROUP, TOTAL_GROUP, History
from multiopt_lab._src.palette import FALLBACK_GREY, group_colour
from multiopt_lab._src.plots.style import (
    COLOUR_BY,
    SAME_AS_STYLE,
    group_colour_map,
    group_colours_used,
    legend_beside,
    new_axes,
    no_data,
    note_same_in_title,
    optimizer_colour_map,
    same_as,
    series,
    smooth,
    steady_limits,
    step_axis,
    themed,
)

__all__ = [
    "draw_group_lines",
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
    step_axis(ax)
    ax.grid(True, alpha=0.3)
    return figure


def draw_group_lines(ax: Axes, found: dict, order, colours: dict, styles: dict | None = None,
                     note_same: str = "legend") -> dict[str, str]:
    """One line per group in ``order``, its group as ``gid``; returns ``{group: group it equals}``.

    A line identical to an earlier one is drawn dashed over it (both colours
    show) and says so: in its legend label (``"vectors (= matrices)"``) or,
    with ``note_same="title"``, in the axes' title (when a figure-wide legend
    serves several axes).
    """
    styles = styles or {}
    equal = same_as(found, order)
    for label in order:
        steps, values = found[label]
        shown = label if label not in equal or note_same != "legend" else f"{label} (= {equal[label]})"
        style = SAME_AS_STYLE if label in equal else styles.get(label, "-")
        line, = ax.plot(steps, values, color=colours[label], linewidth=1.5, linestyle=style, label=shown)
        line.set_gid(label)
    if note_same == "title":
        note_same_in_title(ax, equal)
    return equal


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
    colour_by: str = "group",
    legend: bool = True,
) -> Figure:
    """One line per parameter group for ``metric`` (e.g. ``"update_norm"``).

    The legend sits to the right of the axes, off the data. A group whose
    line is identical to an earlier group's (two equal learning rates) is
    drawn dashed over it and labelled ``"vectors (= matrices)"``.

    Args:
        history (History): What to plot.
        metric (str): A metric of the optimizer (``update_norm``,
            ``grad_norm``, ``param_norm``, ``update_ratio``, ``learning_rate``).
        run (str, optional): Default: the current run.
        log (bool): Log-scale y axis. Default: ``False``.
        include_total (bool): Also draw group ``"total"`` (grey, dash-dotted). Default: ``False``.
        reference (float, optional): Draw a dashed grey line at this height. Default: ``None``.
        ax (Axes, optional): Draw here instead of a new figure.
        title (str, optional): Default: the metric's name.
        colour_by (str): ``"group"``: the tree's colours, by place in the partition;
            ``"optimizer"``: by optimizer class, the same in every run of the
            history (use it for panels that compare runs). Default: ``"group"``.
        legend (bool): Draw the legend beside the axes. Default: ``True``.
        theme (str, optional): ``"light"``, ``"dark"`` or ``None``.

    Example:
        >>> h = History(); h.start_run("r", {"labels": ["a", "b"]})
        'r'
        >>> h.record(1, metrics={"a": {"learning_rate": 0.1}, "b": {"learning_rate": 0.1}})
        >>> [line.get_label() for line in plot_group_metric(h, "learning_rate").axes[0].get_lines()]
        ['a', 'b (= a)']
    """
    if colour_by not in COLOUR_BY:
        raise ValueError(f"colour_by must be one of {COLOUR_BY}, got {colour_by!r}")
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
    if colour_by == "optimizer":
        colours, styles = optimizer_colour_map(history, run)
    else:
        colours, styles = group_colour_map(history, run), {}
    order = [label for label in history.labels(run) if label in found]
    draw_group_lines(ax, found, order, colours, styles, note_same="legend" if legend else "title")
    if include_total and total is not None:
        line, = ax.plot(*total, color=FALLBACK_GREY, linestyle="-.", linewidth=1.2, label=TOTAL_GROUP)
        line.set_gid(TOTAL_GROUP)
    if reference is not None:
        ax.axhline(reference, color=FALLBACK_GREY, linestyle="--", linewidth=1.2, label=f"reference {reference:g}")
    if log:
        ax.set_yscale("log")
    else:
        steady_limits(ax)  # a constant learning rate reads 0.001, not 0.00096-0.00104
    step_axis(ax)
    ax.grid(True, alpha=0.3)
    if legend and ax.get_lines():
        legend_beside(ax)
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
    colour_by: str = "group",
    legend: bool = True,
) -> Figure:
    """Update-to-parameter norm ratio per group, log scale, with a dashed reference line.

    Args:
        reference (float, optional): Height of the dashed grey reference line
            (``None``: no line). Default: ``1e-3``.
        colour_by (str): ``"group"`` or ``"optimizer"`` (see :func:`plot_group_metric`).
            Default: ``"group"``.
        legend (bool): Draw the legend beside the axes (``False`` for panels
            that share one figure legend). Default: ``True``.
    """
    return plot_group_metric(
        history, "update_ratio", run=run, ax=ax, theme=theme, log=True, reference=reference,
        title="update / parameter ratio", colour_by=colour_by, legend=legend,
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

    Runs take the palette's colours in the order given, after the colours
    the history's groups take (a run is not a group: in a notebook that also
    shows the groups, in the tree or in per-group figures, no run wears a
    group's colour; the palette repeats only past seven groups and runs). A
    run identical to an earlier one (a resumed run) is drawn dashed over it
    and labelled ``"resumed (= never stopped)"``.

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
    found = {}
    for name in chosen:
        picked = series(frame, metric, run=name, group=group)
        if group in picked:
            steps, values = picked[group]
            found[name] = (steps, smooth(values, smoothing))
    if not found:
        no_data(ax, f"{metric}{where}")
        return figure
    taken = group_colours_used(history)
    colours = {name: group_colour(taken + i) for i, name in enumerate(chosen)}
    draw_group_lines(ax, found, [name for name in chosen if name in found], colours)
    if log:
        ax.set_yscale("log")
    step_axis(ax)
    ax.grid(True, alpha=0.3)
    legend_beside(ax)
    return figure
