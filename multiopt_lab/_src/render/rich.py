"""Rich display hooks: what a notebook shows for an Assignment or a MultiOptimizer.

Core objects call these lazily from ``_repr_html_`` (core never imports
``render`` at import time):

.. code-block:: python

    def _repr_html_(self):
        from multiopt_lab._src.render.rich import assignment_repr_html
        return assignment_repr_html(self)
"""

from __future__ import annotations

from html import escape

from multiopt_lab._src.palette import group_colour
from multiopt_lab._src.render.document import render_html
from multiopt_lab._src.render.html import tree_css
from multiopt_lab._src.optimizer.describe import describe_optimizer
from multiopt_lab._src.render.params import rule_display

__all__ = ["assignment_repr_html", "optimizer_repr_html"]


def assignment_repr_html(assignment) -> str:
    """The legend and the folded tree of ``assignment``, coloured by group.
    """
    return render_html(assignment)


def optimizer_repr_html(optimizer, parameters=None) -> str:
    """The tree of the parameters ``optimizer`` routes, or its groups when none are known.

    Uses ``parameters`` when given, else the optimizer's ``last_assignment``
    (the assignment of the last parameters it updated) when it has one.

    Args:
        optimizer (MultiOptimizer): A ``multiopt_lab`` MultiOptimizer.
        parameters (optional): A model or parameter tree to assign. Default: ``None``.
    """
    if parameters is not None:
        return render_html(optimizer.assign(parameters), optimizer)
    last = getattr(optimizer, "last_assignment", None)
    if last is not None:
        return render_html(last, optimizer)
    rules = list(optimizer.filters) + [None]
    rows = "".join(
        f'<tr data-group="{escape(label)}" style="--mol-c:{group_colour(i)}"><td><span class="mol-group">'
        f'<span class="mol-swatch"></span>{escape(label)}</span></td><td>{escape(describe_optimizer(o))}</td>'
        f"<td><code>{escape(rule_display(r))}</code></td></tr>"
        for i, (label, o, r) in enumerate(zip(optimizer.labels, optimizer.optimizers, rules))
    )
    return (f'<div class="mol-root"><style>{tree_css()}</style><table class="mol-legend"><thead><tr>'
            f"<th>group</th><th>optimizer</th><th>rule</th></tr></thead><tbody>{rows}</tbody></table>"
            "<i>No parameters seen yet: ParameterTreeWidget(model, optimizer) shows the tree.</i></div>")
