"""The legend: one row per group, and the diagnostics listed in words.

Each row gives the group's label and colour, its optimizer with the main
hyperparameters, the rule text, how many parameters and elements it owns,
its share of the model and, in a few words, the findings about it (``!``
for errors and warnings). Below the table, each finding on one line. All
the words come from the assignment's findings
(:mod:`multiopt_lab._src.partition.findings`). The fallback row counts what no
rule matched: that is its job, not a finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from multiopt_lab._src.palette import group_colour
from multiopt_lab._src.text_fit import DEFAULT_WIDTH, check_width, clip, wrap, wrap_lines
from multiopt_lab._src.optimizer.describe import describe_optimizer, optimizers_of, short_optimizer
from multiopt_lab._src.render.numbers import grouped, percent
from multiopt_lab._src.render.params import group_totals, rule_display

__all__ = ["LegendRow", "legend_rows", "diagnostic_lines", "legend_text", "legend_html"]

#: How many paths a diagnostic line names before it says "and N more".
PATHS_SHOWN = 3


def _marked(finding, text: str) -> str:
    return f"! {text}" if finding.flagged else text


@dataclass(frozen=True)
class LegendRow:
    """One group as the legend shows it.

    Attributes:
        index (int): Position in the partition.
        label (str): Group label.
        colour (str): Hex colour from :func:`~multiopt_lab._src.palette.group_colour`.
        optimizer (str): ``AdamW(lr=0.001, ...)``, or ``""`` when no optimizer is known.
        rule (str): Rule text, a callable's name, or ``(fallback)``.
        params (int): Parameter arrays in the group.
        elements (int): Elements in the group.
        share (str): Share of the model's elements (``"82%"``).
        notes (tuple[str, ...]): The findings about this group, in a few words.
        optimizer_short (str): ``AdamW lr=0.001 wd=0.01``: the compact form the HTML shows.
    """

    index: int
    label: str
    colour: str
    optimizer: str
    rule: str
    params: int
    elements: int
    share: str
    notes: tuple[str, ...]
    optimizer_short: str = ""


def legend_rows(assignment, optimizers=None) -> list[LegendRow]:
    """The legend's rows, in partition order.

    Args:
        assignment (Assignment): The assignment to describe.
        optimizers (MultiOptimizer | Sequence[Optimizer] | None, optional): Where the
            optimizer column comes from. Default: ``None`` (column left empty).
    """
    labels = assignment.group_labels
    opts = optimizers_of(optimizers, len(labels))
    if opts is None and getattr(assignment, "optimizers", None) is not None:
        opts = list(assignment.optimizers)
    diagnostics = assignment.diagnostics
    params, elements = group_totals(assignment)
    total = sum(elements)
    rows = []
    for i, (label, rule) in enumerate(zip(labels, assignment.rules)):
        notes = [_marked(f, f.short()) for f in diagnostics.for_group(label)]
        optimizer = describe_optimizer(opts[i]) if opts is not None else ""
        short = short_optimizer(opts[i]) if opts is not None else ""
        share = percent(elements[i], total)
        rows.append(LegendRow(i, label, group_colour(i), optimizer, rule_display(rule), params[i], elements[i],
                              share, tuple(notes), short))
    return rows


def diagnostic_lines(assignment, width: int | None = None) -> list[str]:
    """The assignment's findings, one each (``!`` before errors and warnings); ``[]`` when
    there is none.

    Args:
        assignment (Assignment): The assignment to describe.
        width (int | None, optional): Break each finding between words into
            lines of at most this many columns (continued two columns in).
            Default: ``None`` (one line each, whatever its length).
    """
    return wrap_lines([_marked(f, f.line(PATHS_SHOWN)) for f in assignment.diagnostics.findings],
                      width)


def legend_text(assignment, optimizers=None, width: int | None = DEFAULT_WIDTH) -> str:
    """The legend as aligned text, followed by the diagnostics in words.

    One row per group when that fits ``width``; otherwise each group's row
    (label, counts, share) is followed by its optimizer, rule and notes on
    lines of their own, broken between words. The diagnostics break between
    words too.

    Args:
        assignment (Assignment): The assignment to describe.
        optimizers (MultiOptimizer | Sequence[Optimizer] | None, optional): Source of the
            optimizer column. Default: ``None``.
        width (int | None, optional): Columns; ``None``: no limit.
            Default: :data:`~multiopt_lab._src.text_fit.DEFAULT_WIDTH` (100).
    """
    width = check_width(width)
    rows = legend_rows(assignment, optimizers)
    header = ["group", "optimizer", "rule", "params", "elements", "share", "notes"]
    table = [[r.label, r.optimizer, r.rule, grouped(r.params), grouped(r.elements), r.share, "; ".join(r.notes)]
             for r in rows]
    keep = [i for i in range(len(header)) if i != 1 or any(r.optimizer for r in rows)]
    widths = {i: max(len(header[i]), *(len(t[i]) for t in table)) for i in keep}
    right = {3, 4, 5}

    def line(cells, columns) -> str:
        return "  ".join(cells[i].rjust(widths[i]) if i in right else cells[i].ljust(widths[i])
                         for i in columns).rstrip()

    diagnostics = diagnostic_lines(assignment, width)
    if width is None or sum(widths.values()) + 2 * (len(keep) - 1) <= width:
        return "\n".join([line(header, keep)] + [line(t, keep) for t in table] + diagnostics)
    # Too wide for one row a group: the counts in a row, the words below it.
    counts = [0, 3, 4, 5]
    widths[0] = min(widths[0], width - sum(widths[i] + 2 for i in counts[1:]))
    lines = [line(header, counts)]
    for t in table:
        lines.append(line([clip(t[0], widths[0]), *t[1:]], counts))
        named = [(name, t[i]) for name, i in (("optimizer", 1), ("rule", 2)) if i in keep]
        for name, text in named:
            lines += wrap(text, width, f"  {name.ljust(9)}  ", " " * 13)
        if t[6]:
            lines += wrap(t[6], width, "  ", "    ")
    return "\n".join(lines + diagnostics)


def legend_html(assignment, optimizers=None) -> str:
    """The legend as an HTML table (``mol-legend``) and a diagnostics list (``mol-diagnostics``).

    Each row carries ``data-group`` and its colour as ``--mol-c``.

    Args:
        assignment (Assignment): The assignment to describe.
        optimizers (MultiOptimizer | Sequence[Optimizer] | None, optional): Source of the
            optimizer column. Default: ``None``.
    """
    rows = legend_rows(assignment, optimizers)
    show_optimizer = any(r.optimizer for r in rows)
    head = ["group"] + (["optimizer"] if show_optimizer else []) + ["rule", "params", "elements", "share", "notes"]
    out = ['<table class="mol-legend"><thead><tr>', *(f"<th>{h}</th>" for h in head), "</tr></thead><tbody>"]
    for r in rows:
        out.append(f'<tr data-group="{escape(r.label)}" style="--mol-c:{r.colour}">'
                   f'<td><span class="mol-group"><span class="mol-swatch"></span>{escape(r.label)}</span></td>')
        if show_optimizer:  # compact, wrapping; the whole description is the tooltip
            out.append(f'<td class="mol-opt" title="{escape(r.optimizer)}">{escape(r.optimizer_short)}</td>')
        out.append(f'<td class="mol-rule-cell"><code>{escape(r.rule)}</code></td><td class="mol-num">{grouped(r.params)}</td>'
                   f'<td class="mol-num">{grouped(r.elements)}</td><td class="mol-num">{r.share}</td>'
                   f'<td class="mol-notes">{escape("; ".join(r.notes))}</td></tr>')
    out.append("</tbody></table>")
    lines = diagnostic_lines(assignment)
    if lines:
        out.append('<ul class="mol-diagnostics">' + "".join(f"<li>{escape(x)}</li>" for x in lines) + "</ul>")
    return "".join(out)
