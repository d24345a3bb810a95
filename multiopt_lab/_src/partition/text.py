"""The plain-text form of an assignment: one aligned line per parameter, by module.

Example (``print(assign(model, ["ndim == 2"], ["muon", "adamw"]))``)::

    parameter  shape   dtype    size  group  rule
    fc
      weight   [2, 3]  float32     6  muon   ndim == 2
      bias     [2]     float32     2  adamw  (fallback)

    muon   1 parameter      6 values  75.0%
    adamw  1 parameter      2 values  25.0%
"""

from __future__ import annotations

from multiopt_lab._src.text_fit import DEFAULT_WIDTH, check_width, clip, clip_path, shrink_widths, wrap

__all__ = ["format_assignment", "format_summary"]

_HEADER = ("parameter", "shape", "dtype", "size", "group", "rule")


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _rows(assignment) -> list[tuple[str, ...] | str]:
    """Module headers (plain strings) and parameter rows (tuples), modules in first-seen order."""
    table, labels = assignment.table, assignment.group_labels
    by_module: dict[str, list[int]] = {}
    for i, path in enumerate(table.paths):
        by_module.setdefault(path.rpartition(".")[0], []).append(i)
    winners = assignment.winners.tolist()
    masks = assignment.masks
    rows: list[tuple[str, ...] | str] = []
    for module, indices in by_module.items():
        if module:
            rows.append(module)
        indent = "  " if module else ""
        for i in indices:
            g = winners[i]
            others = [labels[k] for k in range(masks.shape[0]) if k != g and masks[k, i]]
            rule = assignment.rule_text(g) + (f"  [also: {', '.join(others)}]" if others else "")
            rows.append((indent + table.names[i], _shape(table.shapes[i]), table.dtypes[i],
                         f"{table.sizes[i]:,}", labels[g], rule))
    return rows


def format_summary(assignment, with_rules: bool = False, width: int | None = DEFAULT_WIDTH) -> str:
    """One aligned line per group: count, values, share (and the rule).

    A rule too long for ``width`` continues on the next lines, broken between words.
    """
    width = check_width(width)
    lines = _legend(assignment, width)
    if not with_rules:
        return "\n".join(lines)
    out = []
    for g, line in enumerate(lines):
        if width is None or width - len(line) - 2 >= 24:  # the rule beside its group
            out += wrap(assignment.rule_text(g), width, line + "  ", " " * (len(line) + 2))
        else:  # too narrow: the rule below it
            out += [line, *wrap(assignment.rule_text(g), width, "    ")]
    return "\n".join(out)


def _legend(assignment, width: int | None = None) -> list[str]:
    summary = assignment.summary()
    count_width = max(len(str(c)) for c in summary["count"])
    size_width = max(len(f"{s:,}") for s in summary["size"])
    rest = count_width + size_width + 30  # "  N parameters  N values  100.0%"
    width_limit = None if width is None else max(6, width - rest)
    width = min(max(len(label) for label in assignment.group_labels), width_limit or 10**9)
    lines = []
    for label, row in summary.iterrows():
        noun = "parameter " if row["count"] == 1 else "parameters"
        lines.append(f"{clip(label, width):<{width}}  {row['count']:>{count_width}} {noun}  "
                     f"{row['size']:>{size_width},} values  {row['share']:6.1%}")
    return lines


def format_assignment(assignment, max_rows: int | None = None, width: int | None = DEFAULT_WIDTH) -> str:
    """Render ``assignment`` as aligned text: rows by module, then a legend per group.

    No line is wider than ``width``: the rule is shortened first (with an
    ellipsis), then the names and labels; a module's path keeps every
    segment and shortens the longest.

    Args:
        assignment (Assignment): What to render.
        max_rows (int, optional): Show at most this many parameter rows and
            say how many were left out. Default: ``None`` (all).
        width (int | None, optional): Columns; ``None``: no limit. Default: ``100``.
    """
    width = check_width(width)
    rows = _rows(assignment)
    hidden = 0
    if max_rows is not None:
        kept, shown = [], 0
        for row in rows:
            if isinstance(row, tuple):
                shown += 1
                if shown > max_rows:
                    hidden += 1
                    continue
            elif shown >= max_rows:
                continue
            kept.append(row)
        rows = kept
    table_rows = [_HEADER] + [r for r in rows if isinstance(r, tuple)]
    widths = [max(len(r[c]) for r in table_rows) for c in range(len(_HEADER) - 1)]
    if width is not None:
        rule = max(len(r[-1]) for r in table_rows)
        room = width - 2 * (len(_HEADER) - 1) - widths[1] - widths[2] - widths[3]
        rule = min(rule, max(10, room - widths[0] - widths[4]))
        widths[0], widths[4] = shrink_widths([widths[0], widths[4]], [8, 6], room - rule)
    right = {3}  # sizes align right

    def line(cells: tuple[str, ...]) -> str:
        parts = [clip(c, w).rjust(w) if k in right else clip(c, w).ljust(w)
                 for k, (c, w) in enumerate(zip(cells, widths))]
        return clip("  ".join(parts + [cells[-1]]).rstrip(), width)

    out = [line(_HEADER)]
    out += [line(r) if isinstance(r, tuple) else clip_path(r, width) for r in rows]
    if hidden:
        out.append(f"... {hidden} more parameters (print(assignment) shows all)")
    if not len(assignment.table):
        out.append("(no parameters)")
    out.append("")
    out += _legend(assignment, width)
    return "\n".join(out)
