"""What the tree's details pane adds for a parameter with per-parameter metrics: its curves.

A click on a parameter row shows, below its details, a static picture of
its metrics over the run beside its group's
(:func:`multiopt_lab.plots.plot_parameter`), drawn with matplotlib's Agg
backend into a PNG: it needs no interactive backend and stays readable in a
saved notebook.
"""

from __future__ import annotations

import io
from html import escape

from multiopt_lab._src.widgets.static_forms import png_data_url

__all__ = ["PARAMETER_METRICS", "parameter_curves_html", "parameter_curves_png"]

#: The per-parameter metrics the tree's column can show.
PARAMETER_METRICS = ("update_ratio", "update_norm", "grad_norm", "param_norm")


def parameter_curves_png(history, path: str, run: str | None, width_px: int = 560,
                         dpi: int = 80) -> bytes:
    """The PNG of ``path``'s curves beside its group's (see :func:`multiopt_lab.plots.plot_parameter`)."""
    # Imported here: matplotlib is needed only once a parameter with curves is clicked.
    from multiopt_lab._src.plots.parameters import plot_parameter

    figure = plot_parameter(history, path, run=run, width=width_px / dpi)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def parameter_curves_html(history, path: str, run: str | None) -> str:
    """An ``<img>`` of ``path``'s curves over ``run``, or ``""`` when it has none recorded."""
    run = run if run is not None else history.current_run
    if run is None or run not in history.runs or path not in history.parameter_groups(run):
        return ""
    png = parameter_curves_png(history, path, run)
    alt = f"{path}: update norm, gradient norm, parameter norm and update ratio over {run}, beside its group's"
    return (f'<figure class="mol-parameter-curves" data-path="{escape(path)}" style="margin:6px 0 0 0">'
            f'<img src="{png_data_url(png)}" alt="{escape(alt)}" style="max-width:100%"></figure>')
