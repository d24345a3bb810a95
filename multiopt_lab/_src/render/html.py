"""The HTML form of the parameter tree: ``<details>`` per module, CSS inline.

Expand and collapse work in any browser without JavaScript. Every row carries
``data-path``; parameter rows also carry ``data-group`` and their group colour
(``--mol-c``), so browser tests can check what is coloured how. A folded run
carries ``data-fold`` (the parent module) and ``data-fold-count``.

The structure reads without the stylesheet too (a code host's notebook view,
nbviewer and untrusted notebooks strip ``<style>``): a module's children are
items of a nested list, so nesting shows as indentation, and the cells of a
row are separated by spaces, which the grid layout ignores when it is styled.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape
from importlib import resources

from multiopt_lab._src.render.numbers import grouped, plural, shape_text, share_text
from multiopt_lab._src.palette import group_colour
from multiopt_lab._src.render.param_values import value_cell_html
from multiopt_lab._src.render.text import module_notes, param_notes, walk
from multiopt_lab._src.render.tree_model import FoldNode, ParameterTree, ParamNode

__all__ = ["tree_css", "tree_html"]

_INDENT_CH = 2
# Longer rules are cut with an ellipsis in their cell (the legend, the tooltip and the
# details show them whole), so that the notes after them stay in view.
_RULE_CH = 36
# The share bar of a module row: 10ch wide and a 1ch margin (see tree.css).
_BAR_CH = 11


@lru_cache(maxsize=1)
def tree_css() -> str:
    """The stylesheet the HTML form needs (read once from ``tree.css``).
    """
    return resources.files("multiopt_lab._src.render").joinpath("tree.css").read_text(encoding="utf-8")


def _bar(group_elements) -> str:
    total = sum(group_elements)
    if not total:
        return ""
    spans = "".join(
        f'<span style="width:{100 * n / total:.2f}%;--mol-c:{group_colour(i)}"></span>'
        for i, n in enumerate(group_elements) if n
    )
    return f'<span class="mol-bar">{spans}</span>'


def _param_row(node: ParamNode, depth: int, selected: str | None, values=None) -> str:
    info = node.info
    classes = ["mol-row", "mol-param"]
    classes += [f"mol-flag-{flag.replace(' ', '-')}" for flag in info.flags]
    if node.matched:
        classes.append("mol-match")
    if info.path == selected:
        classes.append("mol-selected")
    notes = escape(param_notes(node))
    # A near miss says, on hover, which parameter of that rule it looks like.
    notes_title = f' title="like {escape(info.like)}, which {escape(info.nearly)} took"' if info.like else ""
    # A rule cut short by its column keeps its whole text as a tooltip.
    title = f' title="{escape(info.rule)}"' if len(info.rule) > _RULE_CH else ""
    # The spaces between cells separate them when no stylesheet is applied;
    # a grid ignores whitespace between its items.
    return (
        f'<div class="{" ".join(classes)}" data-path="{escape(info.path)}" data-group="{escape(info.label)}"'
        f' style="--mol-c:{group_colour(info.group)}">'
        f'<span class="mol-name" style="padding-left:{depth * _INDENT_CH}ch">{escape(node.name)}</span> '
        f'<span class="mol-shape">{shape_text(info.shape)}</span> <span class="mol-dtype">{escape(info.dtype)}</span> '
        f'<span class="mol-elements">{grouped(info.size)}</span> '
        f'<span class="mol-group"><span class="mol-swatch"></span>{escape(info.label)}</span> '
        f'<span class="mol-rule"{title}>{escape(info.rule)}</span> '
        f'{"" if values is None else value_cell_html(values.get(info.path))}'
        f'<span class="mol-notes"{notes_title}>{notes}</span></div>'
    )


def _module_open(node, depth: int, open_depth: int, searching: bool) -> bool:
    if searching:
        return node.totals.matches > 0
    return depth < open_depth


def _module_summary(node, depth: int, labels, interactive: bool, values=None) -> str:
    fold = ""
    if interactive and isinstance(node, FoldNode):  # only the widget's script acts on it
        fold = f' <button class="mol-unfold" data-unfold="{escape(node.parent_path)}">unfold</button>'
    return (
        f'<summary class="mol-row mol-module-row">'
        f'<span class="mol-name" style="padding-left:{depth * _INDENT_CH}ch">{escape(node.name)}</span> '
        f'<span class="mol-count">{plural(node.totals.params, "param")}</span> <span></span> '
        f'<span class="mol-elements">{grouped(node.totals.elements)}</span> '
        f'<span class="mol-group mol-shares" style="grid-column:5 / span 2">{_bar(node.totals.group_elements)}'
        f'{escape(share_text(node.totals.group_elements, labels))}</span> '
        f'{"" if values is None else value_cell_html(None)}'
        f'<span class="mol-notes">{escape(module_notes(node))}{fold}</span></summary>'
    )


def _render(node, depth, labels, out, open_depth, searching, selected, interactive,
            values=None) -> None:
    if isinstance(node, ParamNode):
        out.append(_param_row(node, depth, selected, values))
        return
    is_fold = isinstance(node, FoldNode)
    classes = "mol-module mol-fold" if is_fold else "mol-module"
    attributes = f' data-path="{escape(node.path)}"'
    if is_fold:
        attributes += f' data-fold="{escape(node.parent_path)}" data-fold-count="{node.count}"'
    if _module_open(node, depth, open_depth, searching):
        attributes += " open"
    out.append(f'<details class="{classes}"{attributes}>')
    out.append(_module_summary(node, depth, labels, interactive, values))
    out.append('<ul class="mol-children">')
    for child in (node.block.children if is_fold else node.children):
        out.append("<li>")
        _render(child, depth + 1, labels, out, open_depth, searching, selected, interactive,
                values)
        out.append("</li>")
    out.append("</ul></details>")


def tree_html(tree: ParameterTree, *, open_depth: int = 2, selected: str | None = None,
              searching: bool = False, interactive: bool = False, values=None) -> str:
    """Render a built tree as HTML (without the stylesheet; see :func:`tree_css`).

    Args:
        tree (ParameterTree): What :func:`~multiopt_lab._src.render.tree_model.build_tree` returned.
        open_depth (int, optional): Modules shallower than this start expanded. Default: ``2``.
        selected (str | None, optional): Path of the parameter to outline. Default: ``None``.
        searching (bool, optional): Expand exactly the modules holding search matches
            and dim the rest. Default: ``False``.
        interactive (bool, optional): Add the "unfold" buttons the widget's script
            handles. Default: ``False``.
        values (dict[str, ValueCell] | None, optional): A value column (before
            the notes): each parameter row's cell, from
            :func:`~multiopt_lab._src.render.param_values.value_cells`. Default: ``None`` (no column).

    Returns:
        str: A ``<div class="mol-tree">`` element.
    """
    labels = tree.group_labels
    nodes = [(len(prefix) // 4, node) for prefix, node in walk(tree.root)]
    params = [node.info for _, node in nodes if isinstance(node, ParamNode)]
    modules = [node for _, node in nodes if not isinstance(node, ParamNode)]
    widths = {
        "name": max(depth * _INDENT_CH + len(node.name) + 3 for depth, node in nodes),
        "shape": max([len(plural(m.totals.params, "param")) for m in modules]
                     + [len(shape_text(p.shape)) for p in params]),
        "dtype": max([len(p.dtype) for p in params] + [1]),
        "elements": len(grouped(tree.root.totals.elements)),
        "group": max([len(label) for label in labels] + [5]) + 3,
        "rule": min(max([len(p.rule) for p in params] + [1]), _RULE_CH),
    }
    # Module rows show the bar and the shares across the group and rule
    # columns: widen the rule column so they never run into the notes.
    shares = max([_BAR_CH + len(share_text(m.totals.group_elements, labels)) for m in modules] + [0])
    widths["rule"] = max(widths["rule"], shares - widths["group"] - 1)
    if values is not None:
        widths["value"] = max([len(c.text) + 2 for c in values.values()] + [3])
    style = ";".join(f"--mol-{key}-w:{value}ch" for key, value in widths.items())
    classes = "mol-tree" + (" mol-searching" if searching else "") + (" mol-with-values" if values is not None else "")
    out = [f'<div class="{classes}" style="{style}">'
           '<ul class="mol-children"><li>']
    _render(tree.root, 0, labels, out, open_depth, searching, selected, interactive, values)
    out.append("</li></ul></div>")
    return "".join(out)
