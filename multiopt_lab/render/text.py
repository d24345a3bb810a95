"""The text form of the parameter tree: exact, stable and aligned.

Every row has the same columns: name (indented by box-drawing guides), shape
(or a parameter count on module rows), dtype, elements, group (or the shares
of the groups on module rows), the rule that matched, and notes (diagnostics,
folds, search matches). Text has no colour, so the group is shown by label.

Notes flag likely mistakes with ``!`` (the findings of severity error or
warning: a near miss, Muon on a vector...) in the findings' own short words,
and count them on every module above; a parameter later rules also matched
says which; what the fallback took is shown by its rule, ``(fallback)``,
not flagged.

Example:
    >>> import mlx.core as mx
    >>> from multiopt_lab.partition.assignment import assign
    >>> from multiopt_lab.render.tree_model import build_tree
    >>> tree = {"embed": {"weight": mx.zeros((8, 4))}, "fc": {"weight": mx.zeros((4, 4)), "bias": mx.zeros((4,))}}
    >>> print(tree_text(build_tree(assign(tree, ["ndim == 2"], ["muon", "adamw"]))))
    model           3 params           52  muon 92% | adamw 8%
    ├── embed       1 param            32  muon
    │   └── weight  [8, 4]    float32  32  muon   ndim == 2
    └── fc          2 params           20  muon 80% | adamw 20%
        ├── weight  [4, 4]    float32  16  muon   ndim == 2
        └── bias    [4]       float32   4  adamw  (fallback)
"""

from __future__ import annotations

from multiopt_lab.render.numbers import grouped, plural, shape_text, share_text
from multiopt_lab.render.tree_model import FoldNode, ModuleNode, ParameterTree, ParamNode

__all__ = ["tree_text", "param_notes", "module_notes", "walk"]

_BRANCH, _LAST, _PIPE, _BLANK = "├── ", "└── ", "│   ", "    "


def param_notes(node: ParamNode) -> str:
    """Likely mistakes, other rules that matched, and search mark of one parameter, as shown in its row.

    Example:
        >>> from multiopt_lab.partition import findings
        >>> from multiopt_lab.render.params import ParamInfo
        >>> error = findings.too_few_dims("muon", "Muon", 2, "", ["w"], "adamw")
        >>> info = ParamInfo("w", (2,), "float32", 2, 0, "muon", "ndim < 3", ("adamw",), ("too few dims",),
        ...                  findings=(error,))
        >>> param_notes(ParamNode("w", info, matched=True))
        '! Muon below 2-D; also matched by adamw; <- match'
    """
    notes = [f"! {finding.title}" for finding in node.info.findings if finding.flagged]
    if node.info.also_matched:
        notes.append(f"also matched by {', '.join(node.info.also_matched)}")
    if node.matched:
        notes.append("<- match")
    return "; ".join(notes)


def module_notes(node) -> str:
    """Folding, warnings and search counts of a module or folded run.

    Example:
        >>> from multiopt_lab.render.tree_nodes import Totals
        >>> module_notes(ModuleNode("attn", "attn", (), Totals(4, 64, (64,), 1, 0)))
        '! 1 flagged below'
    """
    notes = []
    if isinstance(node, FoldNode):
        notes.append(f"folded: {node.count} identical blocks, one shown")
    if node.totals.flagged:
        notes.append(f"! {node.totals.flagged} flagged below")
    if node.totals.matches:
        n = node.totals.matches
        notes.append(f"{n:,} match" + ("" if n == 1 else "es"))
    return "; ".join(notes)


def walk(node, prefix: str = "", guide: str = ""):
    """Yield ``(prefix, node)`` depth-first; a fold yields itself then its block's children.

    ``prefix`` is the box-drawing indentation of the row.

    Example:
        >>> import mlx.core as mx
        >>> from multiopt_lab.partition.assignment import assign
        >>> from multiopt_lab.render.tree_model import build_tree
        >>> tree = build_tree(assign({"embed": {"weight": mx.zeros((2,))}}, []))
        >>> [n.name for _, n in walk(tree.root)]
        ['model', 'embed', 'weight']
    """
    yield prefix, node
    children = node.block.children if isinstance(node, FoldNode) else getattr(node, "children", ())
    for i, child in enumerate(children):
        last = i == len(children) - 1
        yield from walk(child, guide + (_LAST if last else _BRANCH), guide + (_BLANK if last else _PIPE))


def _cells(node, labels) -> list[str]:
    if isinstance(node, ParamNode):
        info = node.info
        return [shape_text(info.shape), info.dtype, grouped(info.size), info.label, info.rule, param_notes(node)]
    return [plural(node.totals.params, "param"), "", grouped(node.totals.elements),
            share_text(node.totals.group_elements, labels), "", module_notes(node)]


def tree_text(tree: ParameterTree) -> str:
    """Render a built tree as aligned text, one row per module, fold or parameter.

    Args:
        tree (ParameterTree): What :func:`~multiopt_lab.render.tree_model.build_tree` returned.

    Returns:
        str: The rows joined by newlines, without trailing spaces.

    Example:
        >>> import mlx.core as mx
        >>> from multiopt_lab.partition.assignment import assign
        >>> from multiopt_lab.render.tree_model import build_tree
        >>> tree_text(build_tree(assign({"w": mx.zeros((2, 2))}, ["ndim == 2"], ["muon", "adamw"]))).splitlines()[0]
        'model  1 param           4  muon'
    """
    rows = [(prefix + node.name, _cells(node, tree.group_labels), isinstance(node, ParamNode))
            for prefix, node in walk(tree.root)]
    name_width = max(len(name) for name, _, _ in rows)
    widths = [0] * 5
    shares_width = 0
    for _, cells, is_param in rows:
        if is_param:
            widths = [max(w, len(c)) for w, c in zip(widths, cells)]
        else:
            widths[0], widths[2] = max(widths[0], len(cells[0])), max(widths[2], len(cells[2]))
            shares_width = max(shares_width, len(cells[3]))
    # Module rows show shares across the group and rule columns; widen the
    # rule column if needed so that every row's notes start at one column.
    widths[4] = max(widths[4], shares_width - widths[3] - 2)
    lines = []
    for name, cells, is_param in rows:
        shape, dtype, size, group, rule, notes = cells
        if is_param:
            parts = [name.ljust(name_width), shape.ljust(widths[0]), dtype.ljust(widths[1]),
                     size.rjust(widths[2]), group.ljust(widths[3]), rule.ljust(widths[4]), notes]
        else:
            parts = [name.ljust(name_width), shape.ljust(widths[0]), "".ljust(widths[1]),
                     size.rjust(widths[2]), group.ljust(widths[3] + 2 + widths[4]), notes]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)
