"""The report's pictures as inline SVG: the figures :mod:`multiopt_lab.plots` draws
(the training curves, the per-parameter overview) and small sparklines of a
learning-rate schedule (drawn here).

Inline SVG needs no file and no request: the page reads offline, scales
without blur and keeps working with JavaScript off. matplotlib is imported
only when a report draws curves.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence

__all__ = ["curves_svg", "figure_svg", "sparkline"]

# The XML prolog and doctype of a standalone SVG file; inside HTML they are noise.
_PROLOG = re.compile(r"^\s*<\?xml[^>]*>\s*(<!DOCTYPE[^>]*>\s*)?", re.S)


def figure_svg(figure, rasterize_meshes: bool = False) -> str:
    """A matplotlib figure as an ``<svg>`` element to put in HTML (no prolog, no date).

    Text is drawn as paths (matplotlib's default): the page needs no font. The
    labels are also in XML comments, which matplotlib escapes. With
    ``rasterize_meshes`` a heatmap's cells are one embedded PNG (a ``data:``
    image inside the SVG, no request) instead of a path per cell, which for
    hundreds of parameters over hundreds of steps would weigh megabytes;
    axes, labels and lines stay vectors.
    """
    if rasterize_meshes:
        from matplotlib.collections import QuadMesh

        for mesh in figure.findobj(QuadMesh):
            mesh.set_rasterized(True)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = _PROLOG.sub("", buffer.getvalue())
    return svg.replace("<svg ", '<svg class="mol-figure" role="img" ', 1)


def curves_svg(history, run: str | None = None) -> str:
    """The run's loss, update norms, update-to-parameter ratios and learning rates, as SVG.
    """
    from multiopt_lab._src.plots.overview import plot_training

    figure = plot_training(history, run=run, theme="light")
    try:
        return figure_svg(figure)
    finally:
        figure.clear()


def sparkline(values: Sequence[float], width: int = 120, height: int = 24, colour: str = "#0072B2",
              log: bool = False) -> str:
    """A tiny line of ``values`` (NaN and, with ``log``, values <= 0 left out), as an ``<svg>``.
    """
    points = [(i, math.log10(v) if log else v) for i, v in enumerate(values)
              if v == v and not (log and v <= 0) and math.isfinite(v)]
    if not points:
        return ""
    low, high = min(y for _, y in points), max(y for _, y in points)
    span_x, span_y = max(1, len(values) - 1), (high - low) or 1.0
    xy = " ".join(f"{2 + (width - 4) * i / span_x:.1f},{height - 2 - (height - 4) * (y - low) / span_y:.1f}"
                  for i, y in points)
    return (f'<svg class="mol-spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'aria-hidden="true"><polyline fill="none" stroke="{colour}" stroke-width="1.5" '
            f'points="{xy}"/></svg>')
