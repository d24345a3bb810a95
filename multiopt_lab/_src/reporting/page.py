"""The report's page: one HTML document with its stylesheet inline, no script, no link.

Selectors name the report's class twice: they then outrank JupyterLab's
rendered-HTML styles (right-aligned cells, shaded code) where a notebook shows it.

Sections fold with ``<details>`` (no JavaScript needed); the colours follow
the reader's light or dark preference; the figures sit on a light card in
both. Every style is scoped under ``.mol-run-report`` so that the same
fragment shows in a notebook without touching the notebook's own styles; there
it takes JupyterLab's theme colours (light or dark).
"""

from __future__ import annotations

from html import escape

from multiopt_lab._src.render.html import tree_css

__all__ = ["REPORT_CSS", "fragment_html", "page_html"]

REPORT_CSS = """
.mol-run-report{--mol-fg:var(--jp-content-font-color1,#1f2328);--mol-muted:var(--jp-content-font-color2,#57606a);
 --mol-bg:var(--jp-layout-color0,#ffffff);--mol-rule:var(--jp-border-color2,#d0d7de);
 --mol-card:var(--jp-layout-color2,#f6f8fa);
 color:var(--mol-fg);background:var(--mol-bg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;
 max-width:1200px;margin:0 auto;padding:16px 20px}
@media (prefers-color-scheme: dark){.mol-run-report.mol-page{--mol-fg:#e6edf3;--mol-muted:#9da7b3;
 --mol-bg:#0d1117;--mol-rule:#30363d;--mol-card:#161b22}}
.mol-run-report.mol-run-report h1{font-size:22px;margin:0 0 4px}
.mol-run-report.mol-run-report h2{font-size:17px;margin:0;display:inline}
.mol-run-report.mol-run-report h3{font-size:14px;margin:10px 0 4px}
.mol-run-report.mol-run-report .mol-summary-line{color:var(--mol-muted);margin:0 0 12px}
.mol-run-report.mol-run-report details.mol-section{border-top:1px solid var(--mol-rule);padding:10px 0}
.mol-run-report.mol-run-report details.mol-section>summary{cursor:pointer;margin-bottom:8px}
.mol-run-report.mol-run-report table{border-collapse:collapse;margin:4px 0}
.mol-run-report.mol-run-report th,.mol-run-report.mol-run-report td{text-align:left;vertical-align:top;padding:3px 10px 3px 0;
 border-bottom:1px solid var(--mol-rule)}
.mol-run-report.mol-run-report tr{background:none}
.mol-run-report.mol-run-report td.mol-num{text-align:right;font-variant-numeric:tabular-nums}
.mol-run-report.mol-run-report code,.mol-run-report.mol-run-report pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
 font-size:12.5px;overflow-wrap:anywhere;background:none;padding:0;color:inherit}
.mol-run-report.mol-run-report pre.mol-rules{background:var(--mol-card);padding:10px;border-radius:6px;white-space:pre-wrap}
.mol-run-report.mol-run-report .mol-note{color:var(--mol-muted);font-size:12.5px;margin:4px 0}
.mol-run-report.mol-run-report .mol-group{display:inline-flex;align-items:center;gap:6px;font-weight:600}
.mol-run-report.mol-run-report .mol-swatch{width:10px;height:10px;border-radius:2px;background:var(--mol-c);display:inline-block}
.mol-run-report.mol-run-report .mol-figure{max-width:100%;height:auto;background:#fff;border-radius:6px}
.mol-run-report.mol-run-report .mol-schedule{margin-top:3px;color:var(--mol-muted)}
.mol-run-report.mol-run-report .mol-spark{vertical-align:middle}
.mol-run-report.mol-run-report table.mol-facts th{color:var(--mol-muted);font-weight:500;padding-right:16px}
.mol-run-report.mol-run-report caption{text-align:left;color:var(--mol-muted);font-size:12.5px;padding-bottom:4px}
"""


def _section(title: str, body: str, open_: bool, key: str) -> str:
    return (f'<details class="mol-section" data-section="{escape(key)}"{" open" if open_ else ""}>'
            f"<summary><h2>{escape(title)}</h2></summary>{body}</details>")


def fragment_html(title: str, sections, summary: str = "") -> str:
    """The report as one ``<div>`` with its stylesheet (what a notebook shows).

    Args:
        title (str): The heading (escaped here).
        sections (Sequence[tuple[str, str, bool]]): ``(title, HTML body, open)`` each;
            the bodies are HTML already escaped by their makers.
        summary (str, optional): A line under the heading (escaped here). Default: ``""``.
    """
    parts = [f'<div class="mol-run-report"><style>{REPORT_CSS}{tree_css()}</style>',
             f"<h1>{escape(title)}</h1>"]
    if summary:
        parts.append(f'<p class="mol-summary-line">{escape(summary)}</p>')
    parts += [_section(name, body, open_, name.lower().split()[0]) for name, body, open_ in sections]
    parts.append("</div>")
    return "".join(parts)


def page_html(title: str, sections, summary: str = "") -> str:
    """The report as a whole document: what ``Report.save`` writes.
    """
    body = fragment_html(title, sections, summary).replace('class="mol-run-report"',
                                                           'class="mol-run-report mol-page"', 1)
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            # No request may leave the file: forbid every fetch, script and frame outright.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\">"
            f"<title>{escape(title)}</title>"
            '<style>html,body{margin:0}@media (prefers-color-scheme: dark){html,body{background:#0d1117}}</style>'
            f"</head><body>{body}</body></html>\n")
