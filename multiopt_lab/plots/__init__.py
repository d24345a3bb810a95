"""Matplotlib figures of a :class:`~multiopt_lab.History`.

Every function returns a ``matplotlib.figure.Figure`` (shown once when it is
a cell's value), draws into ``ax=`` when given one, colours groups as the
parameter tree does and accepts ``theme="dark"`` (:func:`retheme` recolours a
figure already drawn). Legends sit beside the data, never on it; a line
identical to another is drawn dashed over it and says so. Per-parameter metrics
(``per_parameter=True``) have a heatmap over parameters and steps, the top
``k`` parameters farthest from their group's median, one parameter's curves
beside its group's, and the two first in one figure. For figures of your own,
:func:`lab_axes` is ``plt.subplots`` without pyplot (a :class:`LabFigure`,
shown once as a PNG, with no extra ipympl canvas under nbval).

Example:
    >>> from multiopt_lab import History
    >>> from multiopt_lab.plots import plot_loss
    >>> history = History(); history.record(1, loss=1.0); history.record(2, loss=0.5)
    >>> plot_loss(history).axes[0].get_lines()[0].get_ydata().tolist()
    [1.0, 0.5]
"""

from multiopt_lab._src.plots.figures import (
    REFERENCE_RATIO,
    plot_grad_norms,
    plot_group_metric,
    plot_learning_rates,
    plot_loss,
    plot_runs,
    plot_update_norms,
    plot_update_ratios,
)
from multiopt_lab._src.plots.marks import mark_step
from multiopt_lab._src.plots.overview import plot_training
from multiopt_lab._src.plots.parameters import (
    has_parameter_metrics,
    parameter_table,
    plot_parameter,
    plot_parameter_heatmap,
    plot_parameter_overview,
    plot_top_parameters,
    top_parameters,
)
from multiopt_lab._src.plots.style import LabFigure, lab_axes, retheme, smooth

__all__ = [
    "LabFigure",
    "lab_axes",
    "REFERENCE_RATIO",
    "plot_loss",
    "plot_group_metric",
    "plot_update_norms",
    "plot_update_ratios",
    "plot_grad_norms",
    "plot_learning_rates",
    "plot_runs",
    "plot_training",
    "plot_parameter_heatmap",
    "plot_top_parameters",
    "plot_parameter",
    "plot_parameter_overview",
    "top_parameters",
    "parameter_table",
    "has_parameter_metrics",
    "mark_step",
    "retheme",
    "smooth",
]
