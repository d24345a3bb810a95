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
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from multiopt_lab.core.history import SCALAR_GROUP, TOTAL_GROUP, History
from multiopt_lab.core.palette import FALLBACK_GREY, group_colour

__all__ = ["THEMES", "LabFigure", "themed", "new_axes", "group_colour_map", "series", "smooth", "no_data"]

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


def no_data(ax: Axes, what: str) -> None:
    """Say in the axes that there is nothing to draw yet."""
    ax.text(0.5, 0.5, f"no {what} recorded yet", ha="center", va="center", transform=ax.transAxes, color=FALLBACK_GREY)
