"""Mark a step on a figure: a rule edit, a learning-rate change, a resume.

The mark is a solid vertical line in the text colour with a short label, so
it reads apart from the dashed grey reference ratio and from the groups'
coloured lines.
"""

from __future__ import annotations

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from multiopt_lab._src.arguments import checked, is_flag, is_text, number

__all__ = ["mark_step"]


@checked(step=number(), label=is_text, label_every_axes=is_flag)
def mark_step(target: Figure | Axes, step: float, label: str = "", *, label_every_axes: bool = False):
    """Draw a solid vertical line at ``step`` on every axes of ``target``; label it once.

    Args:
        target (Figure | Axes): A figure (every axes gets the line) or one axes.
        step (float): Where, on the step axis (``60.5``: between steps 60 and 61).
        label (str, optional): Written beside the line, at the top of the first
            axes. Default: ``""`` (no label).
        label_every_axes (bool, optional): Label the line on every axes. Default: ``False``.

    Returns:
        Figure | Axes: ``target``, so the call can end a notebook cell.

    Raises:
        TypeError: ``target`` is neither a matplotlib Figure nor an Axes.
    """
    if isinstance(target, Figure):
        axes = list(target.axes)
    elif isinstance(target, Axes):
        axes = [target]
    else:
        raise TypeError(f"expected a matplotlib Figure or Axes to mark, got {type(target).__name__}")
    colour = matplotlib.rcParams["text.color"]
    for i, ax in enumerate(axes):
        ax.axvline(step, color=colour, linestyle="-", linewidth=1.2, alpha=0.75, label="_mark")
        if label and (i == 0 or label_every_axes):
            ax.annotate(label, xy=(step, 1.0), xycoords=("data", "axes fraction"), xytext=(4, -4),
                        textcoords="offset points", ha="left", va="top", fontsize="small", color=colour)
    return target
