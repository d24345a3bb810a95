"""The legend: one row per group, and the diagnostics listed in words.

Each row gives the group's label and colour, its optimizer with the main
hyperparameters, the rule text, how many parameters and elements it owns,
its share of the model and its diagnostics (dead, shadowed, empty, fallback
only, overlaps).

Example:
    >>> import mlx.optimizers as optim
    >>> from multiopt_lab import assign
    >>> from multiopt_lab.examples import MLP
    >>> assignment = assign(MLP(4, [8], 2), ["ndim == 2"], ["muon", "adamw"])
    >>> print(legend_text(assignment, [optim.Muon(0.02), optim.SGD(0.1)]))
    group  optimizer                                        rule        params  elements  share  notes
    muon   Muon(lr=0.02, momentum=0.95, weight_decay=0.01)  ndim == 2        2        48    83%
    adamw  SGD(lr=0.1)                                      (fallback)       2        10    17%  ! 2 fallback only
    ! caught by no rule, only by the fallback 'adamw' (2): layers.0.bias, head.bias
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from multiopt_lab.palette import group_colour
from multiopt_lab.optimizer.describe import describe_optimizer, optimizers_of, short_optimizer
from multiopt_lab.render.numbers import grouped, percent
from multiopt_lab.render.params import FALLBACK_ONLY, OVERLAP, param_infos, rule_display

__all__ = ["LegendRow", "legend_rows", "diagnostic_lines", "legend_text", "legend_html"]

#: How many paths a diagnostic line names before it says "and N more".
PATHS_SHOWN = 3


@dataclass(frozen=True)
class LegendRow:
    """One group as the legend shows it.

    Attributes:
        index (int): Position in the partition.
        label (str): Group label.
        colour (str): Hex colour from :func:`~multiopt_lab.palette.group_colour`.
        optimizer (str): ``AdamW(lr=0.001, ...)``, or ``""`` when no optimizer is known.
        rule (str): Rule text, a callable's name, or ``(fallback)``.
        params (int): Parameter arrays in the group.
        elements (int): Elements in the group.
        share (str): Share of the model's elements (``"82%"``).
        notes (tuple[str, ...]): Diagnostics about this group.
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

    Example:
        >>> from multiopt_lab import assign
        >>> from multiopt_lab.examples import MLP
        >>> assignment = assign(MLP(4, [8], 2), ["ndim == 2"], ["muon", "adamw"])
        >>> [(row.label, row.params, row.share) for row in legend_rows(assignment)]
        [('muon', 2, '83%'), ('adamw', 2, '17%')]
    """
    labels = assignment.group_labels
    opts = optimizers_of(optimizers, len(labels))
    diagnostics = assignment.diagnostics
    dead, shadowed, empty = (set(diagnostics.dead_rules), set(diagnostics.shadowed_rules),
                             set(diagnostics.empty_groups))
    params = [0] * len(labels)
    elements = [0] * len(labels)
    fallback_only = [0] * len(labels)
    overlapping = [0] * len(labels)
    for info in param_infos(assignment).values():
        params[info.group] += 1
        elements[info.group] += info.size
        fallback_only[info.group] += FALLBACK_ONLY in info.flags
        overlapping[info.group] += OVERLAP in info.flags
    total = sum(elements)
    rows = []
    for i, (label, rule) in enumerate(zip(labels, assignment.rules)):
        notes = []
        if label in dead:
            notes.append("! dead rule: matches nothing")
        elif label in shadowed:
            notes.append("! shadowed rule: earlier rules took all it matches")
        elif label in empty:
            notes.append("! empty group")
        if fallback_only[i]:
            notes.append(f"! {fallback_only[i]:,} {FALLBACK_ONLY}")
        if overlapping[i]:
            notes.append(f"! {overlapping[i]:,} also matched by later rules")
        optimizer = describe_optimizer(opts[i]) if opts is not None else ""
        short = short_optimizer(opts[i]) if opts is not None else ""
        share = percent(elements[i], total)
        rows.append(LegendRow(i, label, group_colour(i), optimizer, rule_display(rule), params[i], elements[i],
                              share, tuple(notes), short))
    return rows


def _listed(paths) -> str:
    paths = list(paths)
    shown = ", ".join(paths[:PATHS_SHOWN])
    more = len(paths) - PATHS_SHOWN
    return shown + (f" and {more:,} more" if more > 0 else "")


def diagnostic_lines(assignment) -> list[str]:
    """The assignment's diagnostics in words, one line each; ``[]`` when clean.

    Example:
        >>> from multiopt_lab import assign
        >>> from multiopt_lab.examples import MLP
        >>> assignment = assign(MLP(4, [8], 2), ["ndim == 2"], ["muon", "adamw"])
        >>> diagnostic_lines(assignment)
        ["! caught by no rule, only by the fallback 'adamw' (2): layers.0.bias, head.bias"]
    """
    diagnostics = assignment.diagnostics
    lines = []
    fallback_only = list(diagnostics.fallback_only)
    if fallback_only:
        lines.append(f"! caught by no rule, only by the fallback {diagnostics.fallback_label!r} "
                     f"({len(fallback_only):,}): {_listed(fallback_only)}")
    overlaps = diagnostics.overlaps
    if overlaps:
        described = [f"{p} ({' > '.join(overlaps[p])})" for p in overlaps]
        lines.append(f"! matched by several rules, the first wins ({len(described):,}): {_listed(described)}")
    for label in diagnostics.dead_rules:
        lines.append(f"! dead rule {label!r}: matches no parameter")
    for label in diagnostics.shadowed_rules:
        lines.append(f"! shadowed rule {label!r}: every parameter it matches was taken by an earlier rule")
    reported = set(diagnostics.dead_rules) | set(diagnostics.shadowed_rules)
    empty = [label for label in diagnostics.empty_groups if label not in reported]
    if empty:
        lines.append(f"! empty group: {', '.join(repr(label) for label in empty)}")
    return lines


def legend_text(assignment, optimizers=None) -> str:
    """The legend as aligned text, followed by the diagnostics in words.

    Args:
        assignment (Assignment): The assignment to describe.
        optimizers (MultiOptimizer | Sequence[Optimizer] | None, optional): Source of the
            optimizer column. Default: ``None``.

    Example:
        >>> from multiopt_lab import assign
        >>> from multiopt_lab.examples import MLP
        >>> assignment = assign(MLP(4, [8], 2), ["ndim == 2"], ["muon", "adamw"])
        >>> legend_text(assignment).splitlines()[0]
        'group  rule        params  elements  share  notes'
    """
    rows = legend_rows(assignment, optimizers)
    header = ["group", "optimizer", "rule", "params", "elements", "share", "notes"]
    table = [[r.label, r.optimizer, r.rule, grouped(r.params), grouped(r.elements), r.share, "; ".join(r.notes)]
             for r in rows]
    keep = [i for i in range(len(header)) if i != 1 or any(r.optimizer for r in rows)]
    widths = {i: max(len(header[i]), *(len(t[i]) for t in table)) for i in keep}
    right = {3, 4, 5}

    def line(cells) -> str:
        return "  ".join(cells[i].rjust(widths[i]) if i in right else cells[i].ljust(widths[i]) for i in keep).rstrip()

    lines = [line(header)] + [line(t) for t in table]
    return "\n".join(lines + diagnostic_lines(assignment))


def legend_html(assignment, optimizers=None) -> str:
    """The legend as an HTML table (``mol-legend``) and a diagnostics list (``mol-diagnostics``).

    Each row carries ``data-group`` and its colour as ``--mol-c``.

    Args:
        assignment (Assignment): The assignment to describe.
        optimizers (MultiOptimizer | Sequence[Optimizer] | None, optional): Source of the
            optimizer column. Default: ``None``.

    Example:
        >>> from multiopt_lab import assign
        >>> from multiopt_lab.examples import MLP
        >>> assignment = assign(MLP(4, [8], 2), ["ndim == 2"], ["muon", "adamw"])
        >>> legend_html(assignment).startswith('<table class="mol-legend"')
        True
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
