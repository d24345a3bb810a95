"""Margins in pixels for a figure drawn without a layout engine (the training monitor's).

A constrained layout would place titles, legends and tick labels for any
size, but runs at every drawing and doubles the cost of a redraw, which the
monitor repeats every second. This lays the panels out once per layout from
estimates in pixels instead: room on the left for tick labels and the y
label, a title row with the figure's legend (or two rows when the figure is
too narrow for both), the panels' titles (wrapped onto two lines when they
would overflow their panel) and the step labels at the bottom.
"""

from __future__ import annotations

import matplotlib
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

__all__ = ["fit_layout", "legend_fits_beside_title"]

_LEFT_PX, _RIGHT_PX, _BOTTOM_PX = 64, 16, 42
_COLUMN_GAP_PX, _ROW_GAP_PX = 76, 12
_TITLE_ROW_PX = 24
_CHAR_WIDTH = 0.58  # of the font size, for the proportional default font


def _font_px(figure: Figure, size) -> float:
    return FontProperties(size=size).get_size_in_points() * figure.dpi / 72


def _text_px(figure: Figure, text: str, size) -> float:
    return max((len(line) for line in text.splitlines()), default=0) * _CHAR_WIDTH * _font_px(figure, size)


def legend_fits_beside_title(figure: Figure, title: str, labels) -> bool:
    """Whether the figure's title and a one-row legend of ``labels`` share the top row.
    """
    width = figure.get_figwidth() * figure.dpi
    small = _font_px(figure, "small")
    legend = sum(len(label) * _CHAR_WIDTH * small + 3.2 * small for label in labels)
    return bool(_text_px(figure, title, "medium") + legend + 24 <= width)


def _wrap(title: str) -> str:
    return title.replace(" (", "\n(", 1) if "\n" not in title else title


def fit_layout(figure: Figure, rows: int, columns: int, legend_rows: int = 0) -> None:
    """Set ``figure``'s margins from pixels: titles fit their panels, labels fit the margins.

    Args:
        figure (Figure): A figure whose axes form a ``rows`` x ``columns`` grid.
        rows (int): Rows of panels.
        columns (int): Columns of panels.
        legend_rows (int, optional): Rows the figure's legend takes under the
            title row (``0``: it shares the title row). Default: ``0``.
    """
    width, height = figure.get_size_inches() * figure.dpi
    title_font = matplotlib.rcParams["axes.titlesize"]
    line_px = 1.25 * _font_px(figure, title_font)
    panel_width = (width - _LEFT_PX - _RIGHT_PX - _COLUMN_GAP_PX * (columns - 1)) / max(columns, 1)
    lines_by_row = [1] * rows
    for i, ax in enumerate(figure.axes[: rows * columns]):
        title = ax.get_title()
        if title and _text_px(figure, title, title_font) > panel_width:
            ax.set_title(_wrap(title))
        lines_by_row[i // columns] = max(lines_by_row[i // columns], ax.get_title().count("\n") + 1)
    legend_px = legend_rows * 1.6 * _font_px(figure, "small")
    top = _TITLE_ROW_PX + legend_px + lines_by_row[0] * line_px + 6
    gaps = [_ROW_GAP_PX + lines * line_px + 6 for lines in lines_by_row[1:]]
    panel_height = (height - top - _BOTTOM_PX - sum(gaps)) / max(rows, 1)
    mean_gap = sum(gaps) / len(gaps) if gaps else 0
    figure.subplots_adjust(left=_LEFT_PX / width, right=1 - _RIGHT_PX / width, top=1 - top / height,
                           bottom=_BOTTOM_PX / height,
                           wspace=_COLUMN_GAP_PX / max(panel_width, 1),
                           hspace=mean_gap / max(panel_height, 1))
