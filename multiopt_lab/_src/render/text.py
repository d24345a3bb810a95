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
"""

from __future__ import annotations

from multiopt_lab._src.text_fit import DEFAULT_WIDTH, check_width, clip, shrink_widths
from multiopt_lab._src.render.numbers import grouped, plural, shape_text, share_text
from multiopt_lab._src.render.tree_model import FoldNode, ParameterTree, ParamNode

__all__ = ["tree_text", "param_notes", "module_notes", "walk"]

#: Box-drawing guides: branch, last branch, pipe, blank; the narrow set for narrow widths.
_WIDE = ("├── ", "└── ", "│   ", "    ")
_NARROW = ("├ ", "└ ", "│ ", "  ")


def param_notes(node: ParamNode) -> str:
    """Likely mistakes, other rules that matched, and search mark of one parameter, as shown in its row.
    """
    notes = [f"! {finding.title}" for finding in node.info.findings if finding.flagged]
    if node.info.also_matched:
        notes.append(f"also matched by {', '.join(node.info.also_matched)}")
    if node.matched:
        notes.append("<- match")
    return "; ".join(notes)


def module_notes(node) -> str:
    """Folding, warnings and search counts of a module or folded run.
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


def walk(node, prefix: str = "", guide: str = "", guides: tuple[str, str, str, str] = _WIDE):
    """Yield ``(prefix, node)`` depth-first; a fold yields itself then its block's children.

    ``prefix`` is the box-drawing indentation of the row (four columns a level,
    or whatever ``guides``, a (branch, last, pipe, blank) tuple, gives).
    """
    yield prefix, node
    branch, last_branch, pipe, blank = guides
    children = node.block.children if isinstance(node, FoldNode) else getattr(node, "children", ())
    for i, child in enumerate(children):
        last = i == len(children) - 1
        yield from walk(child, guide + (last_branch if last else branch), guide + (blank if last else pipe),
                        guides)


def _row_notes(node) -> str:
    """A module's notes in a text row: warnings first (a narrow text cuts the notes from
    their end), the fold in few words."""
    notes = []
    if node.totals.flagged:
        notes.append(f"! {node.totals.flagged} flagged below")
    if isinstance(node, FoldNode):
        notes.append(f"{node.count} identical, one shown")
    if node.totals.matches:
        n = node.totals.matches
        notes.append(f"{n:,} match" + ("" if n == 1 else "es"))
    return "; ".join(notes)


def _cells(node, labels) -> list[str]:
    if isinstance(node, ParamNode):
        info = node.info
        return [shape_text(info.shape), info.dtype, grouped(info.size), info.label, info.rule, param_notes(node)]
    return [plural(node.totals.params, "param"), "", grouped(node.totals.elements),
            share_text(node.totals.group_elements, labels), "", _row_notes(node)]


# The layouts tried in turn: a narrower text gives up the dtype first, then the
# rule (the legend has every group's rule), deep indentation, the size and the
# shape. The first that fits with whole warnings, names and shares, readable
# notes and the sizes wins; else the best of those that fit (see tree_text).
_LAYOUTS = (
    (_WIDE, ("shape", "dtype", "size", "rule")),
    (_WIDE, ("shape", "size", "rule")),
    (_WIDE, ("shape", "size")),
    (_NARROW, ("shape", "size", "rule")),
    (_NARROW, ("shape", "size")),
    (_NARROW, ("shape",)),
    (_NARROW, ()),
)
# The least a shortened column keeps: a name segment, a group label, a rule, the notes.
_MIN_NAME, _MIN_GROUP, _MIN_RULE, _MIN_NOTES = 6, 6, 12, 10
# Notes this wide read whole in most rows ("! overlap: also sgd, adam"): worth the dtype column.
_GOOD_NOTES = 26


class _Row:
    __slots__ = ("prefix", "name", "is_param", "shape", "dtype", "size", "group", "rule", "notes")

    def __init__(self, prefix: str, node, labels):
        self.prefix, self.name, self.is_param = prefix, node.name, isinstance(node, ParamNode)
        self.shape, self.dtype, self.size, self.group, self.rule, self.notes = _cells(node, labels)


def _widest(rows, column: str, params_only: bool = False) -> int:
    return max((len(getattr(r, column)) for r in rows if r.is_param or not params_only), default=0)


def _layout(rows, kept: tuple[str, ...], width: int | None) -> dict[str, int] | None:
    """Column widths for these rows and columns within ``width``; None when they cannot fit."""
    has_rule = "rule" in kept
    name = max(len(r.prefix) + len(r.name) for r in rows)
    widths: dict[str, int] = {c: _widest(rows, c) for c in ("shape", "size") if c in kept}
    if "dtype" in kept:
        widths["dtype"] = _widest(rows, "dtype", params_only=True)
    group = _widest(rows, "group", params_only=True)
    shares = max((len(r.group) for r in rows if not r.is_param), default=0)
    rule = _widest(rows, "rule", params_only=True) if has_rule else 0
    if has_rule:  # module rows show their shares across the group and rule columns
        rule = max(rule, shares - group - 2)
    else:
        group = max(group, shares)
    notes = _widest(rows, "notes")
    # Two spaces before every column but the name; the notes column only when a row has notes.
    fixed = sum(widths.values()) + 2 * (len(widths) + 1 + has_rule + bool(notes))
    natural = {"name": name, "group": group, "rule": rule, "notes": notes}
    if width is None or fixed + name + group + rule + notes <= width:
        return {**widths, **natural}
    # Shorten the rule first, then the notes, then the names and the group labels alike.
    least_name = max(len(r.prefix) + min(len(r.name), _MIN_NAME) for r in rows)
    least_group = min(group, _MIN_GROUP if has_rule else max(_MIN_GROUP, min(shares, 24)))
    least_rule = min(rule, max(_MIN_RULE, shares - group - 2)) if has_rule else 0
    least_notes = min(notes, _MIN_NOTES)
    room = width - fixed
    if least_name + least_group + least_rule + least_notes > room:
        return None
    # The rule gives way first, then the notes down to their warnings, then the names and
    # the labels alike, then the rest of the notes.
    warnings = min(notes, max(least_notes, _warnings_width(rows)))
    rule = min(rule, max(least_rule, room - name - group - notes))
    notes = min(notes, max(warnings, room - rule - name - group))
    name, group = shrink_widths([name, group], [least_name, least_group], room - rule - notes)
    notes = min(notes, max(least_notes, room - rule - name - group))
    return {**widths, "name": name, "group": group, "rule": rule, "notes": notes}


def _warnings_width(rows) -> int:
    """How wide the notes must be to show every row's first warning whole (``! near miss of muon``)."""
    return max((len(r.notes.split("; ")[0]) for r in rows if r.notes.startswith("!")), default=0)


def _line(row: _Row, kept: tuple[str, ...], widths: dict[str, int]) -> str:
    name = row.prefix + clip(row.name, widths["name"] - len(row.prefix))
    parts = [name.ljust(widths["name"])]
    if "shape" in kept:
        parts.append(clip(row.shape, widths["shape"]).ljust(widths["shape"]))
    if "dtype" in kept:
        parts.append(row.dtype.ljust(widths["dtype"]))
    if "size" in kept:
        parts.append(row.size.rjust(widths["size"]))
    if row.is_param:
        parts.append(clip(row.group, widths["group"]).ljust(widths["group"]))
        if "rule" in kept:
            parts.append(clip(row.rule, widths["rule"]).ljust(widths["rule"]))
    else:  # the shares span the group and rule columns
        span = widths["group"] + (2 + widths["rule"] if "rule" in kept else 0)
        parts.append(clip(row.group, span).ljust(span))
    if row.notes:
        parts.append(clip(row.notes, widths["notes"]))
    return "  ".join(parts).rstrip()


def tree_text(tree: ParameterTree, width: int | None = DEFAULT_WIDTH) -> str:
    """Render a built tree as aligned text, one row per module, fold or parameter.

    No line is wider than ``width``: the rule, the notes, then the names
    (inside a segment) and the labels are shortened with an ellipsis, and a
    narrow width drops the dtype, then the rule (the legend holds every
    group's rule), narrows the indentation, then drops the size and the shape.

    Args:
        tree (ParameterTree): What :func:`~multiopt_lab._src.render.tree_model.build_tree` returned.
        width (int | None, optional): Columns; ``None``: no limit.
            Default: :data:`~multiopt_lab._src.text_fit.DEFAULT_WIDTH` (100).

    Returns:
        str: The rows joined by newlines, without trailing spaces.
    """
    width = check_width(width)
    labels = tree.group_labels
    rows_for = {guides: [_Row(prefix, node, labels) for prefix, node in walk(tree.root, guides=guides)]
                for guides in (_WIDE, _NARROW)}
    fitting = []
    for guides, kept in _LAYOUTS:
        rows = rows_for[guides]
        widths = _layout(rows, kept, width)
        if widths is not None:
            natural = _layout(rows, kept, None)
            assert natural is not None  # without a width every layout fits
            warnings_whole = widths["notes"] >= _warnings_width(rows)
            whole = widths["name"] == natural["name"] and widths["group"] == natural["group"]
            readable_notes = widths["notes"] >= min(natural["notes"], _GOOD_NOTES)
            fitting.append(((warnings_whole, "size" in kept, whole, readable_notes,
                             widths["name"] - natural["name"]), rows, kept, widths))
            if warnings_whole and whole and readable_notes and "size" in kept:
                break  # nothing better comes after
    if not fitting:  # not even the narrowest layout fits: cut each line
        rows, kept = rows_for[_NARROW], _LAYOUTS[-1][1]
        widths = _layout(rows, kept, None)
        assert widths is not None  # without a width every layout fits
        return "\n".join(clip(_line(row, kept, widths), width) for row in rows)
    # Else the first of the best: whole warnings, the sizes, whole names and shares, readable
    # notes, the least cut off the names.
    _, rows, kept, widths = max(fitting, key=lambda f: f[0])
    return "\n".join(_line(row, kept, widths) for row in rows)
