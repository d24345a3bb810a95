"""The monitor's tables: the last value of every metric, one row per group; and, with
per-parameter metrics, the parameters farthest from their group's median ratio.
"""

from __future__ import annotations

import html

from multiopt_lab._src.training.history import SCALAR_GROUP, TOTAL_GROUP, History
from multiopt_lab._src.optimizer.metrics import nonfinite_groups
from multiopt_lab._src.plots.parameters import parameter_colour_map, top_parameters
from multiopt_lab._src.plots.style import group_colour_map

__all__ = ["last_values_html", "top_parameters_html", "NOT_APPLICABLE"]

_METRIC_ORDER = ("loss", "update_norm", "grad_norm", "param_norm", "update_ratio", "learning_rate")


#: Shown where a metric does not apply (the learning rate of "total", of an
#: optimizer without one) or was not recorded for the group.
NOT_APPLICABLE = "\u2013"
# NaN here means "has none", not "went non-finite" (see optimizer.metrics).
_NAN_MEANS_NONE = frozenset({"learning_rate"})


def _cell(values: dict[str, float], metric: str) -> str:
    value = values.get(metric)
    if value is None or (metric in _NAN_MEANS_NONE and value != value):
        return f'<td class="mol-na" title="does not apply">{NOT_APPLICABLE}</td>'
    return f"<td>{value:.4g}</td>"


def last_values_html(history: History, run: str | None = None) -> str:
    """An HTML table of the last value of every metric, one row per group.
    """
    run = run if run is not None else history.current_run
    if run is None:
        return _empty("no run recorded yet")
    if run not in history.runs:
        return _empty(f"run {run!r} has not started yet")
    step = history.last_step(run)
    if step is None:
        return _empty(f"run {run!r} has started; no step recorded yet")
    values = history.last_values(run)
    colours = group_colour_map(history, run)
    groups = [g for g in history.labels(run) if g in values]
    groups += [g for g in (TOTAL_GROUP, SCALAR_GROUP) if g in values]
    metrics = [m for m in _METRIC_ORDER if any(m in values[g] for g in groups)]
    metrics += sorted({m for g in groups for m in values[g]} - set(metrics))
    flagged = nonfinite_groups({g: values[g] for g in groups if g != TOTAL_GROUP})
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    rows = []
    for group in groups:
        swatch = f'<span style="display:inline-block;width:0.8em;height:0.8em;background:{colours.get(group, "#8C8C8C")};margin-right:0.4em"></span>'
        name = "loss / scalars" if group == SCALAR_GROUP else group
        cells = "".join(_cell(values[group], m) for m in metrics)
        flag, row_class = "", ""
        if group in flagged:  # NaN/inf gradient or update at the last recorded step
            kinds = " and ".join(flagged[group])
            flag = f' <span class="mol-nonfinite-flag" title="non-finite {kinds}">&#9888; non-finite {kinds}</span>'
            row_class = ' class="mol-nonfinite"'
        rows.append(f'<tr data-group="{html.escape(group)}"{row_class}><td>{swatch}{html.escape(name)}{flag}</td>{cells}</tr>')
    return (
        f"<style>{_TABLE_CSS}</style>"
        f'<table class="mol-monitor-values"><caption>{html.escape(run)}, step {step}</caption>'
        f"<tr><th>group</th>{head}</tr>{''.join(rows)}</table>"
    )


def _empty(text: str) -> str:
    return (f'<div class="mol-monitor-empty" style="font-size:13px;padding:4px 0;'
            f'color:var(--jp-content-font-color2,#616161)">{html.escape(text)}</div>')


# Compact rows: doubled classes outrank JupyterLab's table styles, and the line
# height undoes the 28 px line height of an ipywidgets.HTML's content.
_TABLE_CSS = (
    "table.mol-monitor-values.mol-monitor-values{border-collapse:collapse;line-height:1.35;font-size:12px}"
    "table.mol-monitor-values.mol-monitor-values td,table.mol-monitor-values.mol-monitor-values th"
    "{padding:1px 1.2ch;line-height:1.35;text-align:right;border:none;background:none}"
    "table.mol-monitor-values.mol-monitor-values tr>:first-child{text-align:left}"
    "table.mol-monitor-values.mol-monitor-values td.mol-na{color:var(--jp-content-font-color3,#888)}"
)


def _swatch(colour: str) -> str:
    return (f'<span style="display:inline-block;width:0.8em;height:0.8em;background:{colour};'
            'margin-right:0.4em"></span>')


def top_parameters_html(history: History, run: str | None = None, k: int = 5,
                        metric: str = "update_ratio") -> str:
    """The ``k`` parameters whose ``metric`` is farthest from their group's median, as a table.

    ``""`` when the run recorded no per-parameter metrics (the monitor then
    shows nothing in its place).
    """
    run = run if run is not None else history.current_run
    if run is None or run not in history.runs:
        return ""
    table = top_parameters(history, metric, k=k, run=run)
    if table.empty:
        return ""
    colours = parameter_colour_map(history, run)
    rows = []
    for row in table.itertuples():
        times = row.times_median
        far = "" if times != times else (f"{times:.3g}x" if times >= 1 or times == 0
                                         else f"1/{1 / times:.3g}")
        rows.append(f'<tr data-path="{html.escape(row.path)}" data-group="{html.escape(row.group)}">'
                    f'<td>{_swatch(colours.get(row.group, "#8C8C8C"))}{html.escape(row.path)}</td>'
                    f"<td>{html.escape(row.group)}</td><td>{row.value:.3g}</td><td>{far}</td></tr>")
    return (
        f"<style>{_TABLE_CSS}</style>"
        f'<table class="mol-monitor-values mol-monitor-top"><caption>{html.escape(metric)}: '
        f"farthest from the group median, step {table.attrs.get('step')}</caption>"
        f"<tr><th>parameter</th><th>group</th><th>{html.escape(metric)}</th><th>x median</th></tr>"
        f"{''.join(rows)}</table>"
    )
