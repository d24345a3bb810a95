"""Shared plumbing of the figures: themes, group colours, series, smoothing.

Figures are made with ``matplotlib.figure.Figure`` rather than pyplot, so
returning one from a notebook cell shows it once (pyplot would show it a
second time at the end of the cell) and nothing accumulates in pyplot's
figure list.

Example:
    >>> smooth([1.0, 0.0, 0.0], 0.5).round(3).tolist()
    [1.0, 0.333, 0.143]
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable, Iterator

import matplotlib
import matplotlib.style
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from multiopt_lab.training.history import SCALAR_GROUP, TOTAL_GROUP, History
from multiopt_lab.palette import FALLBACK_GREY, group_colour

__all__ = ["THEMES", "LabFigure", "lab_axes", "themed", "new_axes", "group_colour_map", "series", "smooth", "no_data", "steady_limits"]

#: Accepted values of ``theme``: ``None`` keeps the current matplotlib style.
THEMES = (None, "light", "dark")

_COLOUR_KEYS = (
    "figure.facecolor", "axes.facecolor", "savefig.facecolor", "axes.edgecolor", "axes.labelcolor",
    "text.color", "xtick.color", "ytick.color", "grid.color", "legend.facecolor", "legend.edgecolor",
)
_LIGHT = {key: matplotlib.rcParamsDefault[key] for key in _COLOUR_KEYS}
_DARK = {
    **{key: value for key, value in matplotlib.style.library["dark_background"].items() if key in _COLOUR_KEYS},
    # JupyterLab's dark theme background, so the figure blends in.
    "figure.facecolor": "#111111",
    "axes.facecolor": "#111111",
    "savefig.facecolor": "#111111",
    "legend.facecolor": "#111111",
    "grid.color": "#444444",
}


@contextlib.contextmanager
def theme_context(theme: str | None) -> Iterator[None]:
    """Apply ``theme`` (``None``, ``"light"`` or ``"dark"``) to what is drawn inside the block.

    Only colours change; the user's fonts and sizes are kept.
    """
    if theme not in THEMES:
        raise ValueError(f"theme must be one of {THEMES}, got {theme!r}")
    if theme is None:
        yield
        return
    with matplotlib.rc_context(_DARK if theme == "dark" else _LIGHT):
        yield


def themed(function: Callable[..., Figure]) -> Callable[..., Figure]:
    """Run a plotting function inside its ``theme`` keyword's context."""

    @functools.wraps(function)
    def wrapper(*args, theme: str | None = None, **kwargs) -> Figure:
        with theme_context(theme):
            return function(*args, **kwargs)

    return wrapper


class LabFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG in any notebook.

    A figure made without pyplot has a rich display only after pyplot's
    inline backend has been loaded; this one always has (``_repr_png_``).

    Example:
        >>> LabFigure(figsize=(1, 1))._repr_png_()[:4]
        b'\\x89PNG'
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()


def lab_axes(rows: int = 1, columns: int = 1, *, figsize: tuple[float, float] | None = None, **kwargs):
    """``plt.subplots`` without pyplot: a :class:`LabFigure` and its axes.

    A pyplot figure is also shown by the notebook's backend (with ipympl, an
    extra canvas output in the cell); this one is shown once, as a PNG, when
    it is the cell's value.

    Args:
        rows (int): Rows of axes. Default: ``1``.
        columns (int): Columns of axes. Default: ``1``.
        figsize (tuple[float, float], optional): Inches. Default: ``(6 * columns, 3.5 * rows)``.
        **kwargs: Passed to ``Figure.subplots`` (``sharex=True``, ...).

    Returns:
        tuple: The figure, and one ``Axes`` or an array of them, as ``plt.subplots`` gives.

    Example:
        >>> figure, (left, right) = lab_axes(1, 2)
        >>> type(figure).__name__, len(figure.axes)
        ('LabFigure', 2)
    """
    figure = LabFigure(figsize=figsize or (6.0 * columns, 3.5 * rows), layout="constrained")
    return figure, figure.subplots(rows, columns, **kwargs)


def new_axes(ax: Axes | None, size: tuple[float, float] = (6.0, 3.5)) -> tuple[Figure, Axes]:
    """The caller's axes, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    figure = LabFigure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def group_colour_map(history: History, run: str | None = None) -> dict[str, str]:
    """Colour of each group of ``run``: the tree's colour by partition position; grey for totals and scalars."""
    colours = {label: group_colour(i) for i, label in enumerate(history.labels(run))}
    colours[TOTAL_GROUP] = FALLBACK_GREY
    colours[SCALAR_GROUP] = FALLBACK_GREY
    return colours


def series(frame: pd.DataFrame, metric: str, *, run: str, group: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{group: (steps, values)}`` of ``metric`` in ``run``, sorted by step."""
    selected = frame[(frame["run"].values == run) & (frame["metric"].values == metric)]
    if group is not None:
        selected = selected[selected["group"].values == group]
    found = {}
    for name, part in selected.groupby("group", sort=False):
        part = part.sort_values("step", kind="stable")
        found[str(name)] = (part["step"].to_numpy(), part["value"].to_numpy())
    return found


def smooth(values, smoothing: float) -> np.ndarray:
    """Exponential moving average, debiased so the first values are not pulled to 0.

    Args:
        values (array-like): The raw series.
        smoothing (float): In ``[0, 1)``; ``0`` returns the values unchanged.
    """
    values = np.asarray(values, dtype=np.float64)
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    if smoothing == 0.0 or values.size == 0:
        return values
    # adjust=True divides by the sum of the weights: the debiased average.
    return pd.Series(values).ewm(alpha=1.0 - smoothing, adjust=True).mean().to_numpy()


def steady_limits(ax: Axes, spread: float = 0.1) -> bool:
    """Give a flat line a readable y axis: ``value ± spread`` with three labelled ticks.

    Matplotlib zooms into a constant series until rounding noise fills the
    axis (a learning rate of 0.001 reads 0.00096 to 0.00104 with an offset).
    Lines whose values all agree to 1 part in a million count as flat.

    Args:
        ax (Axes): Linear-scale axes with lines drawn.
        spread (float): Half the range shown, relative to the value. Default: ``0.1``.

    Returns:
        bool: Whether the axes were flat (and changed).

    Example:
        >>> from matplotlib.figure import Figure
        >>> ax = Figure().add_subplot(); _ = ax.plot([1, 2], [1e-3, 1e-3])
        >>> steady_limits(ax), [round(float(v), 6) for v in ax.get_ylim()]
        (True, [0.0009, 0.0011])
    """
    values = [np.asarray(line.get_ydata(), dtype=np.float64) for line in ax.get_lines()]
    values = np.concatenate(values) if values else np.empty(0)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return False
    low, high = float(values.min()), float(values.max())
    middle = (low + high) / 2
    if high - low > 1e-6 * max(abs(low), abs(high)):
        return False
    half = spread * abs(middle) if middle else 1.0
    ax.set_ylim(middle - half, middle + half)
    ax.set_yticks([middle - half, middle, middle + half])
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:.3g}"))
    return True


def no_data(ax: Axes, what: str) -> None:
    """Say in the axes that there is nothing to draw yet."""
    ax.text(0.5, 0.5, f"no {what} recorded yet", ha="center", va="center", transform=ax.transAxes, color=FALLBACK_GREY)
