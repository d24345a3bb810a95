"""Shared plumbing of the figures: themes, group colours, series, smoothing.

Figures are made with ``matplotlib.figure.Figure`` rather than pyplot, so
returning one from a notebook cell shows it once (pyplot would show it a
second time at the end of the cell) and nothing accumulates in pyplot's
figure list.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import inspect
import io
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import matplotlib
import matplotlib.style
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from multiopt_lab._src.arguments import checked, is_flag, is_text, kind, number, optional
from multiopt_lab._src.training.arguments import required_history
from multiopt_lab._src.training.history import SCALAR_GROUP, TOTAL_GROUP, History
from multiopt_lab._src.display import bundle_for
from multiopt_lab._src.palette import FALLBACK_GREY, group_colour

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = [
    "THEMES", "COLOUR_BY", "LabFigure", "lab_axes", "themed", "new_axes", "group_colour_map", "optimizer_colour_map",
    "group_colours_used",
    "series", "smooth", "no_data", "steady_limits", "step_axis", "same_as", "note_same_in_title", "legend_beside",
    "retheme",
]

#: Accepted values of ``theme``: ``None`` keeps the current matplotlib style.
THEMES = (None, "light", "dark")
#: Accepted values of ``colour_by``: the group's place in its partition (the
#: tree's colours) or its optimizer's class (the same across compared runs).
COLOUR_BY = ("group", "optimizer")
#: Line styles that tell apart groups sharing a colour (one optimizer class).
_STYLES = ("-", "--", "-.", ":")
#: The dashes of a line drawn over an identical one: the one below shows in the gaps.
SAME_AS_STYLE = "--"

_COLOUR_KEYS: tuple[RcKeyType, ...] = (
    "figure.facecolor", "axes.facecolor", "savefig.facecolor", "axes.edgecolor", "axes.labelcolor",
    "text.color", "xtick.color", "ytick.color", "grid.color", "legend.facecolor", "legend.edgecolor",
)
_LIGHT: dict[RcKeyType, Any] = {key: matplotlib.rcParamsDefault[key] for key in _COLOUR_KEYS}
_DARK: dict[RcKeyType, Any] = {
    **{key: value for key, value in matplotlib.style.library["dark_background"].items() if key in _COLOUR_KEYS},
    # JupyterLab's dark theme: its background, so the figure blends in, and its
    # text colour (a soft white, as --jp-content-font-color1).
    "figure.facecolor": "#111111",
    "axes.facecolor": "#111111",
    "savefig.facecolor": "#111111",
    "legend.facecolor": "#111111",
    "legend.edgecolor": "#444444",
    "grid.color": "#444444",
    "text.color": "#dddddd",
    "axes.labelcolor": "#dddddd",
    "xtick.color": "#dddddd",
    "ytick.color": "#dddddd",
    "axes.edgecolor": "#aaaaaa",
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


def _list_of_text(value, where: str, name: str):
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return value
    raise TypeError(f"{where}: {name} must be a list of run names, found {type(value).__name__} "
                    f"{value!r:.60}")


#: The arguments every plotting function may take, and what each must be: a
#: plotting function's arguments are checked before it draws (see ``themed``).
PLOT_ARGUMENTS = {
    "history": required_history, "run": optional(is_text), "metric": is_text,
    "group": is_text, "runs": optional(_list_of_text), "title": optional(is_text),
    "colour_by": is_text, "smoothing": number(low=0, high=1, high_open=True), "log": is_flag,
    "legend": is_flag, "include_total": is_flag, "reference": optional(number()),
    "ax": optional(kind(Axes, "a matplotlib Axes")),
    "figure": optional(kind(Figure, "a matplotlib Figure")),
    # the per-parameter views
    "k": number(low=1, integer=True), "group_blocks": is_flag,
    "max_labels": number(low=1, integer=True), "step": optional(number(integer=True)),
    "path": is_text, "width": number(low=0, low_open=True),
}


_Plot = TypeVar("_Plot", bound=Callable[..., Any])


def checked_plot(plot: _Plot) -> _Plot:
    """A plotting function whose arguments are checked first (:data:`PLOT_ARGUMENTS`)."""
    names = inspect.signature(plot).parameters
    return checked(**{name: check for name, check in PLOT_ARGUMENTS.items() if name in names})(plot)


def themed(plot: Callable[..., Figure]) -> Callable[..., Figure]:
    """Run a plotting function inside its ``theme`` keyword's context, its arguments
    checked first (:func:`checked_plot`)."""
    plot = checked_plot(plot)

    @functools.wraps(plot)
    def wrapper(*args, theme: str | None = None, **kwargs) -> Figure:
        with theme_context(theme):
            return plot(*args, **kwargs)

    return wrapper


class LabFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG in any notebook.

    A figure made without pyplot has a rich display only after pyplot's
    inline backend has been loaded; this one always has (``_repr_png_``).
    In a notebook kernel it is shown in a view that follows the page's
    theme (redrawn in dark colours when JupyterLab's theme is dark, see
    :func:`retheme`); the PNG stays in the output for a saved notebook.

    Example:
        >>> LabFigure(figsize=(1, 1))._repr_png_()[:4]
        b'\\x89PNG'
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        live = bundle_for("figure", self)
        if live is not None:
            return live
        return {"image/png": base64.b64encode(self._repr_png_()).decode("ascii"), "text/plain": repr(self)}


@checked(rows=number(low=1, integer=True), columns=number(low=1, integer=True))
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


def new_axes(ax: Axes | None, size: tuple[float, float] = (7.2, 3.6)) -> tuple[Figure, Axes]:
    """The caller's axes, or a new figure with one axes (wide enough for a legend beside it).
    """
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]  # a SubFigure when the axes sit in one, as before
    figure = LabFigure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def group_colour_map(history: History, run: str | None = None) -> dict[str, str]:
    """Colour of each group of ``run``: the tree's colour by partition position; grey for totals and scalars.
    """
    colours = {label: group_colour(i) for i, label in enumerate(history.labels(run))}
    colours[TOTAL_GROUP] = FALLBACK_GREY
    colours[SCALAR_GROUP] = FALLBACK_GREY
    return colours


def _optimizer_classes(history: History, run: str | None) -> dict[str, str]:
    metadata = history.metadata(run)
    labels, parts = metadata.get("labels") or [], metadata.get("optimizers") or []
    return {label: part["class"] for label, part in zip(labels, parts) if isinstance(part, dict) and "class" in part}


def optimizer_colour_map(history: History, run: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Colours by optimizer class, the same in every run of ``history``, and a line style per group.

    Classes take the palette's colours in order of first appearance across
    the runs, so Adam has one colour in every panel of a comparison. Groups of
    one run that share a class get different line styles. A group whose run
    recorded no optimizers falls back to its partition colour.

    Returns:
        tuple[dict, dict]: ``{group: colour}`` and ``{group: line style}`` for ``run``.
    """
    order: dict[str, int] = {}
    for name in history.runs:
        for known in _optimizer_classes(history, name).values():
            order.setdefault(known, len(order))
    run = history.current_run if run is None else run
    classes = _optimizer_classes(history, run)
    colours, styles = group_colour_map(history, run), {}
    used: dict[str, int] = {}
    for label in history.labels(run):
        cls = classes.get(label)
        if cls is None:
            continue
        colours[label] = group_colour(order[cls])
        styles[label] = _STYLES[used.get(cls, 0) % len(_STYLES)]
        used[cls] = used.get(cls, 0) + 1
    return colours, styles


def group_colours_used(history: History) -> int:
    """How many palette colours groups can take in ``history``'s figures (by place or by optimizer class).

    Figures of runs start their colours after these, so no run wears a group's colour.
    """
    groups = max((len(history.labels(name)) for name in history.runs), default=0)
    classes = {cls for name in history.runs for cls in _optimizer_classes(history, name).values()}
    return max(groups, len(classes))


def same_as(found: dict, order) -> dict[str, str]:
    """``{label: earlier label}`` for every series identical to an earlier one in ``order``.

    Two identical lines drawn the same way hide each other; callers draw the
    later one dashed and say which it equals.
    """
    equal: dict[str, str] = {}
    for i, label in enumerate(order):
        steps, values = found[label]
        for earlier in order[:i]:
            if earlier in equal:
                continue
            other_steps, other_values = found[earlier]
            if np.array_equal(steps, other_steps) and np.array_equal(values, other_values, equal_nan=True):
                equal[label] = earlier
                break
    return equal


def note_same_in_title(ax: Axes, equal: dict[str, str]) -> bool:
    """Say in the axes' title which lines equal which (``"learning rate (b = a)"``); return whether it changed.
    """
    before = ax.get_title()
    base = re.split(r"\s\(", before, maxsplit=1)[0]
    after = base + ("" if not equal else " (" + ", ".join(f"{a} = {b}" for a, b in equal.items()) + ")")
    if after.replace("\n", " ") == before.replace("\n", " "):
        return False
    ax.set_title(after)
    return True


def step_axis(ax: Axes) -> None:
    """Ticks at whole steps only (no ``2.5`` on a 20-step axis).
    """
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins="auto", integer=True))


def legend_beside(ax: Axes) -> None:
    """The axes' legend to its right, outside the data (a constrained layout makes room).
    """
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small", frameon=False)


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


@checked(smoothing=PLOT_ARGUMENTS["smoothing"])
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
    """
    lines = [np.asarray(line.get_ydata(), dtype=np.float64) for line in ax.get_lines()]
    values = np.concatenate(lines) if lines else np.empty(0)
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


def _theme_colours(theme: str) -> dict[str, tuple]:
    source = _DARK if theme == "dark" else _LIGHT
    colours: dict[str, tuple] = {}
    for key in _COLOUR_KEYS:
        try:
            colours[key] = matplotlib.colors.to_rgba(source[key])
        except (ValueError, KeyError):  # "inherit" (the legend's face follows the axes')
            colours[key] = matplotlib.colors.to_rgba(source["axes.facecolor"])
    return colours


@checked(figure=kind(Figure, "a matplotlib Figure"))
def retheme(figure: Figure, theme: str) -> Figure:
    """Recolour a drawn figure for ``theme`` (``"light"`` or ``"dark"``), in place.

    Whatever wears the other theme's colours (backgrounds, text, spines,
    ticks, grid, legend frames, a black marker line) takes this theme's;
    every other colour (the groups') stays. The notebook view of a figure
    calls it when the page switches theme.

    Example:
        >>> from matplotlib.figure import Figure
        >>> figure = Figure(); _ = figure.add_subplot().set_title("t")
        >>> _ = retheme(figure, "dark")
        >>> matplotlib.colors.to_hex(figure.axes[0].title.get_color())
        '#dddddd'
    """
    if theme not in ("light", "dark"):
        raise ValueError(f"theme must be 'light' or 'dark', got {theme!r}")
    new, old = _theme_colours(theme), _theme_colours("light" if theme == "dark" else "dark")
    swap = {old[key][:3]: new[key][:3] for key in _COLOUR_KEYS}
    # Text and edges first: where the two themes share a colour the later pair wins.
    for key in ("text.color", "axes.edgecolor", "axes.labelcolor", "xtick.color", "ytick.color"):
        swap[old[key][:3]] = new[key][:3]

    def recolour(getter, setter) -> None:
        try:
            colour = getter()
        except (AttributeError, TypeError):
            return
        if isinstance(colour, np.ndarray):
            colour = colour[0] if colour.ndim == 2 and len(colour) == 1 else colour
        try:
            rgba = matplotlib.colors.to_rgba(colour)
        except (ValueError, TypeError):
            return
        if rgba[:3] in swap:
            setter((*swap[rgba[:3]], rgba[3]))

    for artist in figure.findobj():
        for name in ("color", "facecolor", "edgecolor", "markeredgecolor", "markerfacecolor"):
            getter, setter = getattr(artist, f"get_{name}", None), getattr(artist, f"set_{name}", None)
            if getter is not None and setter is not None:
                recolour(getter, setter)
    for ax in figure.axes:  # ticks made later copy these
        ax.tick_params(which="both", colors=new["xtick.color"], labelcolor=new["xtick.color"])
    return figure


def no_data(ax: Axes, what: str) -> None:
    """Say in the axes that there is nothing to draw yet."""
    ax.text(0.5, 0.5, f"no {what} recorded yet", ha="center", va="center", transform=ax.transAxes, color=FALLBACK_GREY)
