"""The sections of a run report, each an HTML fragment with every user-given text escaped.

Labels, rule texts, parameter paths, run names and file names come from the
user (or from a file someone sent them): every one goes through
:func:`html.escape`, so that a label such as ``<img src=x onerror=...>``
shows as text and runs nothing.
"""

from __future__ import annotations

import datetime
import platform
from html import escape
from importlib import metadata as package_metadata

import mlx.core as mx

from multiopt_lab._src.device import describe_facts, device_facts
from multiopt_lab._src.io.rulefile import rules_to_toml
from multiopt_lab._src.palette import group_colour
from multiopt_lab._src.render.document import render_html
from multiopt_lab._src.render.numbers import grouped, percent, plural
from multiopt_lab._src.render.reports import diagnostics_html
from multiopt_lab._src.reporting.figures import figure_svg, sparkline
from multiopt_lab._src.reporting.setup import RunSetup
from multiopt_lab._src.version import __version__

__all__ = ["findings_html", "groups_html", "tree_html", "rules_html", "per_parameter_html",
           "environment_html", "facts_html"]

#: Parameters listed under the per-parameter figure: the farthest from their group's median.
TOP_PARAMETERS = 10
#: The per-parameter metric a report shows, in order of preference.
PARAMETER_METRICS = ("update_ratio", "update_norm", "grad_norm", "param_norm")
_METRIC_WORDS = {"update_ratio": "update-to-parameter ratio", "update_norm": "update norm",
                 "grad_norm": "gradient norm", "param_norm": "parameter norm"}


def findings_html(assignment) -> str:
    """The assignment's findings (errors, warnings, notes: dead and shadowed rules, near
    misses, broken optimizer contracts...), in the words every other surface uses.
    """
    return diagnostics_html(assignment.diagnostics)


def facts_html(facts) -> str:
    """``(name, value)`` pairs as a two-column table, values escaped.
    """
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in facts)
    return f'<table class="mol-facts">{rows}</table>'


def _settings(settings: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def _schedule(group) -> str:
    if not group.schedule:
        return ""
    points = "; ".join(f"step {step:,}: {value:.4g}" for step, value in group.schedule)
    line = sparkline([v for _, v in group.schedule], width=80, height=18)
    return (f'<div class="mol-schedule">{escape(group.schedule_name or "schedule")} {line}'
            f"<br><small>{escape(points)}</small></div>")


def groups_html(setup: RunSetup, assignment) -> str:
    """One row per group: colour and label, optimizer and settings, learning rate or schedule,
    rule, and (with an assignment) parameters, elements and share.
    """
    counts = elements = None
    if assignment is not None:
        summary = assignment.summary()
        counts = {label: int(summary.loc[label, "count"]) for label in summary.index}
        elements = {label: int(summary.loc[label, "size"]) for label in summary.index}
    total = sum(elements.values()) if elements else 0
    head = ["group", "optimizer", "settings", "rule"] + (["params", "elements", "share"] if counts else [])
    rows = []
    for i, group in enumerate(setup.groups):
        cells = [f'<td><span class="mol-group" style="--mol-c:{group_colour(i)}"><span class="mol-swatch">'
                 f"</span>{escape(group.label)}</span></td>",
                 f"<td>{escape(group.optimizer or 'unknown')}</td>",
                 f"<td><code>{escape(_settings(group.settings))}</code>{_schedule(group)}</td>",
                 f"<td><code>{escape(group.rule)}</code></td>"]
        if counts and elements is not None:
            n, e = counts.get(group.label, 0), elements.get(group.label, 0)
            cells += [f'<td class="mol-num">{grouped(n)}</td>', f'<td class="mol-num">{grouped(e)}</td>',
                      f'<td class="mol-num">{percent(e, total)}</td>']
        rows.append(f'<tr data-group="{escape(group.label)}">{"".join(cells)}</tr>')
    notes = "".join(f"<p class=\"mol-note\">{escape(note)}</p>" for note in setup.notes)
    return (f'<table class="mol-groups"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
            f"<p class=\"mol-note\">Groups as read from {escape(setup.source)}; first match wins, "
            f"the last group takes the rest.</p>{notes}")


def tree_html(assignment, root_name: str) -> str:
    """The parameter tree (folded repeats, warnings in place), four levels open: an mlx-lm
    model's blocks sit three deep (``Model > model > layers > [0..31]``).
    """
    return render_html(assignment, root_name=root_name, legend=False, open_depth=4)


def rules_html(setup: RunSetup) -> str:
    """The rules as a rule file (TOML) anyone can load back with ``multiopt_lab.load_rules``.
    """
    texts = [getattr(rule, "text", rule) for rule in setup.rules]
    if all(isinstance(t, str) for t in texts):
        body = rules_to_toml(list(setup.labels), texts)
    else:  # a Python callable is no data: name it
        body = "\n".join(f"# {g.label}: {g.rule}" for g in setup.groups)
        body += "\n# (Python callables: a rule file holds only rule expressions)"
    return f'<pre class="mol-rules">{escape(body)}</pre>'


def per_parameter_html(history, run: str | None) -> str:
    """The per-parameter metrics a History recorded (``per_parameter=True``), as the plots
    draw them: :func:`~multiopt_lab.plots.plot_parameter_overview` (a heatmap of every
    parameter over the steps, the same parameter of repeated blocks side by side, and the
    parameters farthest from their group's median) as inline SVG, then those parameters as
    a table; ``""`` when ``run`` recorded none.

    The metric is the update-to-parameter ratio (or, where it was not recorded, the first
    of the update, gradient and parameter norms that was).
    """
    from multiopt_lab._src.plots.parameters import has_parameter_metrics, plot_parameter_overview, top_parameters

    if run is None or not has_parameter_metrics(history, run):
        return ""
    frame = history.parameters
    recorded = set(frame.loc[frame["run"] == run, "metric"].astype(str))
    metric = next((m for m in PARAMETER_METRICS if m in recorded), None)
    if metric is None:
        return ""
    figure = plot_parameter_overview(history, metric, run=run, k=TOP_PARAMETERS, group_blocks=True,
                                     theme="light")
    try:
        svg = figure_svg(figure, rasterize_meshes=True)
    finally:
        figure.clear()
    top = top_parameters(history, metric, k=TOP_PARAMETERS, run=run)
    rows = []
    for row in top.itertuples(index=False):
        rows.append(f'<tr data-path="{escape(str(row.path))}"><td><code>{escape(str(row.path))}</code></td>'
                    f"<td>{escape(str(row.group))}</td><td class=\"mol-num\">{_number(row.value)}</td>"
                    f"<td class=\"mol-num\">{_number(row.group_median)}</td>"
                    f"<td class=\"mol-num\">{_times(row.times_median)}</td></tr>")
    parameters = len(history.parameter_groups(run))
    step = top.attrs.get("step")
    caption = (f"The {plural(len(rows), 'parameter')} of {grouped(parameters)} farthest from their group's "
               f"median {_METRIC_WORDS[metric]}" + (f" at step {grouped(step)}" if step is not None else ""))
    return (f"{svg}<table class=\"mol-per-parameter\"><caption>{caption}</caption><thead><tr>"
            f"<th>parameter</th><th>group</th><th>{escape(metric)}</th><th>group median</th>"
            f"<th>times the median</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _times(value) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if value != value else f"{value:.3g}x"


def _number(value) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if value != value else f"{value:.4g}"


def _version(package: str) -> str:
    try:
        return package_metadata.version(package)
    except package_metadata.PackageNotFoundError:
        return "not installed"


def environment_html(history, run: str | None) -> str:
    """Where the run was recorded (from the History) and where the report was made: device,
    backend, mlx, multiopt_lab, Python and platform.
    """
    facts = device_facts()
    here = [("device", describe_facts(facts)), ("backend", facts.get("backend", "")),
            ("mlx", mx.__version__), ("multiopt_lab", __version__),  # type: ignore[attr-defined]  # not in mlx's stub
            ("python", platform.python_version()), ("platform", platform.platform()),
            ("numpy", _version("numpy")), ("pandas", _version("pandas")),
            ("matplotlib", _version("matplotlib")),
            ("made", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))]
    parts = []
    if history is not None and getattr(history, "runs", None):
        meta = history.metadata(run)
        recorded = [("device", describe_facts(meta)), ("backend", meta.get("backend", "")),
                    ("mlx", meta.get("mlx_version", "")), ("started", meta.get("created", ""))]
        parts.append("<h3>Recorded on</h3>" + facts_html([(k, v) for k, v in recorded if v]))
    parts.append("<h3>This report made on</h3>" + facts_html(here))
    return "".join(parts)
