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


def format_summary(assignment, with_rules: bool = False) -> str:
    """One aligned line per group: count, values, share (and the rule).

    Example:
        >>> import mlx.nn as nn
        >>> from multiopt_lab.partition.assignment import assign
        >>> print(format_summary(assign(nn.Linear(3, 2), ["ndim == 2"], ["muon", "adamw"]), with_rules=True))
        muon   1 parameter   6 values   75.0%  ndim == 2
        adamw  1 parameter   2 values   25.0%  (fallback)
    """
    lines = _legend(assignment)
    if with_rules:
        lines = [f"{line}  {assignment.rule_text(g)}" for g, line in enumerate(lines)]
    return "\n".join(lines)


def _legend(assignment) -> list[str]:
    summary = assignment.summary()
    width = max(len(label) for label in assignment.group_labels)
    count_width = max(len(str(c)) for c in summary["count"])
    size_width = max(len(f"{s:,}") for s in summary["size"])
    lines = []
    for label, row in summary.iterrows():
        noun = "parameter " if row["count"] == 1 else "parameters"
        lines.append(f"{label:<{width}}  {row['count']:>{count_width}} {noun}  "
                     f"{row['size']:>{size_width},} values  {row['share']:6.1%}")
    return lines


def format_assignment(assignment, max_rows: int | None = None) -> str:
    """Render ``assignment`` as aligned text: rows by module, then a legend per group.

    Args:
        assignment (Assignment): What to render.
        max_rows (int, optional): Show at most this many parameter rows and
            say how many were left out. Default: ``None`` (all).

    Example:
        >>> import mlx.nn as nn
        >>> from multiopt_lab.partition.assignment import assign
        >>> print(format_assignment(assign(nn.Linear(3, 2), ["ndim == 2"], ["muon", "adamw"])))
        parameter  shape   dtype    size  group  rule
        weight     [2, 3]  float32     6  muon   ndim == 2
        bias       [2]     float32     2  adamw  (fallback)
        <BLANKLINE>
        muon   1 parameter   6 values   75.0%
        adamw  1 parameter   2 values   25.0%
    """
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
    right = {3}  # sizes align right

    def line(cells: tuple[str, ...]) -> str:
        parts = [c.rjust(w) if k in right else c.ljust(w) for k, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts + [cells[-1]]).rstrip()

    out = [line(_HEADER)]
    out += [line(r) if isinstance(r, tuple) else r for r in rows]
    if hidden:
        out.append(f"... {hidden} more parameters (print(assignment) shows all)")
    if not len(assignment.table):
        out.append("(no parameters)")
    out.append("")
    out += _legend(assignment)
    return "\n".join(out)
