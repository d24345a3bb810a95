"""Whole renderings: legend, diagnostics and tree together, as text or HTML.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from multiopt_lab._src.arguments import checked, found
from multiopt_lab._src.render.html import tree_css, tree_html
from multiopt_lab._src.render.legend import legend_html, legend_text
from multiopt_lab._src.render.param_values import value_cells
from multiopt_lab._src.render.text import tree_text
from multiopt_lab._src.render.tree_model import build_tree
from multiopt_lab._src.text_fit import DEFAULT_WIDTH, check_width

__all__ = ["render_text", "render_html"]


@checked(assignment=lambda value, where, name: _check_assignment(value, where, name))
def render_text(
    assignment,
    optimizers=None,
    *,
    root_name: str = "model",
    fold: bool = True,
    unfold: Collection[str] = (),
    highlight: Collection[str] = (),
    legend: bool = True,
    width: int | None = DEFAULT_WIDTH,
) -> str:
    """The legend, then a blank line, then the tree, as plain text.

    No line is wider than ``width``: table cells are shortened with an
    ellipsis (a name inside its segment), sentences break between words.

    Args:
        assignment (Assignment): The assignment to show.
        optimizers (MultiOptimizer | Sequence[Optimizer] | None, optional): Source of
            the legend's optimizer column. Default: ``None``.
        root_name (str, optional): Name of the root row. Default: ``"model"``.
        fold (bool, optional): Fold runs of identical numbered blocks. Default: ``True``.
        unfold (Collection[str], optional): Module paths whose runs stay unfolded. Default: ``()``.
        highlight (Collection[str], optional): Paths to mark as search matches. Default: ``()``.
        legend (bool, optional): Include the legend. Default: ``True``.
        width (int | None, optional): Columns (at least 20); ``None``: no limit.
            Default: ``100``, which a JupyterLab output 1000 px wide shows
            without wrapping.

    Example:
        >>> from multiopt_lab import assign
        >>> from multiopt_lab.examples import MLP
        >>> assignment = assign(MLP(4, [8], 2), ["ndim == 2"], ["muon", "adamw"])
        >>> render_text(assignment, legend=False, root_name="MLP").splitlines()[0]
        'MLP                 4 params           58  muon 83% | adamw 17%'
    """
    width = check_width(width)
    tree = tree_text(build_tree(assignment, root_name=root_name, fold=fold, unfold=unfold, highlight=highlight),
                     width)
    if not legend:
        return tree
    return legend_text(assignment, optimizers, width) + "\n\n" + tree


@checked(assignment=lambda value, where, name: _check_assignment(value, where, name))
def render_html(
    assignment,
    optimizers=None,
    *,
    root_name: str = "model",
    fold: bool = True,
    unfold: Collection[str] = (),
    highlight: Collection[str] = (),
    searching: bool = False,
    selected: str | None = None,
    open_depth: int = 2,
    legend: bool = True,
    interactive: bool = False,
    values: Mapping[str, float] | None = None,
    value_metric: str = "update_ratio",
) -> str:
    """A self-contained HTML fragment: stylesheet, legend, diagnostics and tree.

    Args:
        assignment (Assignment): The assignment to show.
        optimizers (MultiOptimizer | Sequence[Optimizer] | None, optional): Source of
            the legend's optimizer column. Default: ``None``.
        root_name (str, optional): Name of the root row. Default: ``"model"``.
        fold (bool, optional): Fold runs of identical numbered blocks. Default: ``True``.
        unfold (Collection[str], optional): Module paths whose runs stay unfolded. Default: ``()``.
        highlight (Collection[str], optional): Paths to mark as search matches. Default: ``()``.
        searching (bool, optional): A search is active: open only the modules with
            matches and dim the other parameters. Default: ``False``.
        selected (str | None, optional): Path of the parameter to outline. Default: ``None``.
        open_depth (int, optional): Modules shallower than this start open. Default: ``2``.
        legend (bool, optional): Include the legend. Default: ``True``.
        interactive (bool, optional): Mark the fragment for the widget's script
            (shows the unfold buttons). Default: ``False``.
        values (Mapping[str, float] | None, optional): A column with a value
            per parameter (``History.parameter_values(...)``); a folded run
            shows the range over its blocks. Default: ``None`` (no column).
        value_metric (str, optional): The values' metric, for their tooltips.
            Default: ``"update_ratio"``.

    Example:
        >>> from multiopt_lab import assign
        >>> from multiopt_lab.examples import MLP
        >>> assignment = assign(MLP(4, [8], 2), ["ndim == 2"], ["muon", "adamw"])
        >>> render_html(assignment).startswith('<div class="mol-root"><style>')
        True
    """
    tree = build_tree(assignment, root_name=root_name, fold=fold, unfold=unfold, highlight=highlight)
    parts = [f'<div class="mol-root{" mol-interactive" if interactive else ""}"><style>{tree_css()}</style>']
    if legend:
        parts.append(legend_html(assignment, optimizers))
    cells = None if values is None else value_cells(tree, values, value_metric)
    parts.append(tree_html(tree, open_depth=open_depth, selected=selected, searching=searching,
                           interactive=interactive, values=cells))
    parts.append("</div>")
    return "".join(parts)


def _check_assignment(value, where: str, name: str):
    if all(hasattr(value, attr) for attr in ("table", "group_labels", "group_index")):
        return value
    raise TypeError(f"{where}: {name} must be an Assignment (what multiopt_lab.assign(model, "
                    f"filters, labels) or optimizer.assign(model) returns), found {found(value)}")
