"""Small HTML forms of core reports: diagnostics (a grouped list) and moves (a table).

Registered by the package for ``Diagnostics._repr_html_`` and
``Moves._repr_html_``; the text forms live with the objects themselves.

Example:
    >>> import mlx.core as mx
    >>> from multiopt_lab.partition.assignment import assign
    >>> a = assign({"w": mx.zeros((2, 2)), "b": mx.zeros((2,))}, ["ndim == 3"], ["conv", "adamw"])
    >>> diagnostics_html(a.diagnostics).startswith('<div class="mol-report mol-diagnostics-report">')
    True
"""

from __future__ import annotations

from html import escape

__all__ = ["diagnostics_html", "moves_html", "history_html"]

_MAX_LISTED = 50


def _items(values) -> str:
    values = list(values)
    shown = "".join(f"<li><code>{escape(v)}</code></li>" for v in values[:_MAX_LISTED])
    if len(values) > _MAX_LISTED:
        shown += f"<li>... and {len(values) - _MAX_LISTED:,} more</li>"
    return f"<ul>{shown}</ul>"


def diagnostics_html(diagnostics) -> str:
    """The diagnostics as a list: one item per warning (``!``), then what the fallback took.

    Example:
        >>> from multiopt_lab.partition.diagnostics import Diagnostics
        >>> "no warnings" in diagnostics_html(Diagnostics((), {}, (), (), (), "adamw"))
        True
    """
    d = diagnostics
    items = []
    for label in d.dead_rules:
        items.append(f"! dead rule <b>{escape(label)}</b> (<code>{escape(d._rule(label))}</code>): "
                     f"matches no parameter{escape(d._hint(label))}")
    for label in d.shadowed_rules:
        items.append(f"! shadowed rule <b>{escape(label)}</b> (<code>{escape(d._rule(label))}</code>): "
                     "every parameter it matches was taken by an earlier rule")
    if d.overlaps:
        items.append(f"! {len(d.overlaps):,} matched by several rules, the first wins"
                     + _items(f"{p} ({' > '.join(labels)})" for p, labels in d.overlaps.items()))
    reported = set(d.dead_rules) | set(d.shadowed_rules)
    for label in d.empty_groups:
        if label not in reported:
            items.append(f"! empty group <b>{escape(label)}</b>")
    if d.near_misses:
        items.append(f"! {len(d.near_misses):,} near miss{'es' * (len(d.near_misses) != 1)}: the "
                     f"fallback <b>{escape(d.fallback_label)}</b> took parameters like ones a rule took"
                     + _items(f"{m.path} ({m.detail}): like {m.like}, which '{m.label}' took"
                              for m in d.near_misses))
    head = (f"diagnostics: {len(d.warnings()):,} warning{'s' * (len(d.warnings()) != 1)}"
            if d.warnings() else "diagnostics: no warnings")
    lines = "".join(f'<li class="mol-warning">{item}</li>' for item in items)
    if d.fallback_only:
        lines += (f'<li class="mol-info">fallback <b>{escape(d.fallback_label)}</b> took '
                  f"{len(d.fallback_only):,} parameter{'s' * (len(d.fallback_only) != 1)} no rule "
                  f"matched{_items(d.fallback_only)}</li>")
    return (f'<div class="mol-report mol-diagnostics-report"><div>{escape(head)}</div>'
            f"<ul>{lines}</ul></div>")


def moves_html(moves) -> str:
    """What moved, one row per direction: from, to, how many, which.

    Example:
        >>> from multiopt_lab.partition.moves import Moves
        >>> moves_html(Moves([]))
        '<div class="mol-report mol-moves">no parameter moves</div>'
    """
    if not moves:
        return '<div class="mol-report mol-moves">no parameter moves</div>'
    rows = "".join(
        f"<tr><td>{escape(source or '(new)')}</td><td>{escape(target or '(gone)')}</td>"
        f'<td style="text-align:right">{len(paths):,}</td><td>{_items(paths)}</td></tr>'
        for (source, target), paths in moves.directions().items())
    return ('<div class="mol-report mol-moves"><table><thead><tr><th>from</th><th>to</th>'
            f"<th>parameters</th><th>which</th></tr></thead><tbody>{rows}</tbody></table></div>")


def history_html(history) -> str:
    """A History as a small table: one row per run (see ``History.summary``).

    Example:
        >>> from multiopt_lab.training.history import History
        >>> h = History(); h.record(3, loss=0.25, run="demo")
        >>> "<td>demo</td>" in history_html(h) and "<td>0.25</td>" in history_html(h)
        True
    """
    summary = history.summary()
    if summary.empty:
        return "<p>History: no run recorded yet</p>"
    head = "".join(f"<th>{escape(c)}</th>" for c in ["run", *summary.columns])
    body = ""
    for run, row in summary.iterrows():
        cells = [run, *("" if v is None or v != v else f"{v:.4g}" if isinstance(v, float) else v
                        for v in row.tolist())]
        body += "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>"
    caption = f"History: {len(summary)} run{'s' * (len(summary) != 1)}, {len(history):,} rows"
    return f"<table><caption>{escape(caption)}</caption><tr>{head}</tr>{body}</table>"
