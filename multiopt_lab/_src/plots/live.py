"""Redraw the overview figure by moving its lines, not by plotting it again.

The training monitor redraws the same figure every second. When nothing
changed but the data (same run, same groups and metrics, same options), the
lines get their new data and the axes rescale: no axes, lines, legends or
tick objects are made again, which roughly halves the cost of a redraw.
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, ScalarFormatter

from multiopt_lab._src.training.history import SCALAR_GROUP, History
from multiopt_lab._src.plots.fixed_layout import fit_layout
from multiopt_lab._src.plots.style import SAME_AS_STYLE, note_same_in_title, same_as, series, smooth, steady_limits

__all__ = ["layout_key", "update_in_place", "remember_layout", "GROUP_PANELS"]

#: The per-group panels of the overview, in order after the loss.
GROUP_PANELS = ("update_norm", "update_ratio", "learning_rate")

_KEY = "_multiopt_lab_layout"
#: Rows the figure legend of a fixed layout takes under the title (see plots.fixed_layout).
_LEGEND_ROWS = "_multiopt_lab_legend_rows"


def layout_key(history: History, run: str | None, smoothing: float, theme: str | None) -> tuple:
    """What decides the figure's layout: run, groups, metrics present and options (not the values).
    """
    run = run if run is not None else history.current_run
    if run is None or run not in history.runs:
        return (run, smoothing, theme)
    present = frozenset((group, metric) for group, values in history.last_values(run).items() for metric in values)
    return (run, history.labels(run), present, smoothing, theme)


def remember_layout(figure: Figure, key: tuple | None, legend_rows: int = 0) -> None:
    """Note the layout just drawn into ``figure`` (``None``: drawn by hand, redraw afresh).
    """
    setattr(figure, _KEY, key)
    setattr(figure, _LEGEND_ROWS, legend_rows)


def _rescale(ax: Axes) -> None:
    ax.set_autoscaley_on(True)  # steady_limits' set_ylim turned it off
    ax.relim()
    ax.autoscale_view()
    if ax.get_yscale() == "log":
        return
    if isinstance(ax.yaxis.get_major_locator(), FixedLocator):  # was flat: undo steady_limits
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.yaxis.set_major_formatter(ScalarFormatter())
    steady_limits(ax)


def update_in_place(figure: Figure, key: tuple, history: History, run: str | None, smoothing: float) -> bool:
    """Give the figure's lines their new data if its layout is ``key``; return whether it did.

    Args:
        figure (Figure): A figure :func:`~multiopt_lab.plots.plot_training` drew.
        key (tuple): :func:`layout_key` of what is to be drawn now.
        history (History): The data.
        run (str, optional): The run (default: the current one).
        smoothing (float): Loss smoothing, as drawn.
    """
    if getattr(figure, _KEY, None) != key or len(key) < 5:
        return False
    run = key[0]
    frame = history.frame
    loss_ax, *group_axes = figure.axes
    found = series(frame, "loss", run=run, group=SCALAR_GROUP)
    lines = loss_ax.get_lines()
    if SCALAR_GROUP not in found or len(lines) != (2 if smoothing else 1):
        return False
    steps, values = found[SCALAR_GROUP]
    lines[0].set_data(steps, values)
    if smoothing:
        lines[1].set_data(steps, smooth(values, smoothing))
    _rescale(loss_ax)
    retitled = False
    for ax, metric in zip(group_axes, GROUP_PANELS):
        found = series(frame, metric, run=run)
        lines = [line for line in ax.get_lines() if line.get_gid() in found]
        for line in lines:
            line.set_data(*found[line.get_gid()])  # type: ignore[index]  # the gid is a key of found
        retitled = _restyle_same(ax, found, lines) or retitled
        _rescale(ax)
    if retitled and figure.get_layout_engine() is None:
        fit_layout(figure, 2, 2, getattr(figure, _LEGEND_ROWS, 0))  # a title may need two lines now
    return True


def _restyle_same(ax: Axes, found: dict, lines) -> bool:
    """Lines that became identical (or stopped being) change their dashes and the title's note."""
    equal = same_as(found, [line.get_gid() for line in lines])
    for line in lines:
        line.set_linestyle(SAME_AS_STYLE if line.get_gid() in equal else "-")
    return note_same_in_title(ax, equal)
