"""Small HTML forms of core reports: diagnostics (a grouped list) and moves (a table).

Registered by the package for ``Diagnostics._repr_html_`` and
``Moves._repr_html_``; the text forms live with the objects themselves.
"""

from __future__ import annotations

from html import escape

from multiopt_lab._src.partition.findings import CONTRACTS_UNCHECKED

__all__ = ["diagnostics_html", "moves_html", "history_html"]

_MAX_LISTED = 50


def _items(values) -> str:
    values = list(values)
    shown = "".join(f"<li><code>{escape(v)}</code></li>" for v in values[:_MAX_LISTED])
    if len(values) > _MAX_LISTED:
        shown += f"<li>... and {len(values) - _MAX_LISTED:,} more</li>"
    return f"<ul>{shown}</ul>"


def diagnostics_html(diagnostics) -> str:
    """The diagnostics as a list: one item per finding (severity, message, paths, fix), then
    what the fallback took. Every word is the finding's own.
    """
    d = diagnostics
    head, *_ = d.lines()
    items = []
    for f in d.findings:
        paths = _items(f.blocks) if f.paths else ""
        fix = f'<div class="mol-fix">fix: {escape(f.hint)}</div>' if f.hint else ""
        items.append(f'<li class="mol-{f.severity}" data-kind="{escape(f.kind)}">'
                     f"<b>{escape(f.severity)}</b>: {escape(f.message)}{paths}{fix}</li>")
    if d.fallback_only:
        items.append(f'<li class="mol-info">{escape(d.fallback_finding.message)}'
                     f"{_items(d.fallback_finding.blocks)}</li>")
    if not d.contracts_checked:
        items.append(f'<li class="mol-info">{escape(CONTRACTS_UNCHECKED)}</li>')
    return (f'<div class="mol-report mol-diagnostics-report"><div>{escape(head)}</div>'
            f"<ul>{''.join(items)}</ul></div>")


def moves_html(moves) -> str:
    """What moved, one row per direction: from, to, how many, which.
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
