"""The sections of a run report, each an HTML fragment with every user-given text escaped.

Labels, rule texts, parameter paths, run names and file names come from the
user (or from a file someone sent them): every one goes through
:func:`html.escape`, so that a label such as ``<img src=x onerror=...>``
shows as text and runs nothing.

Example:
    >>> from multiopt_lab.reporting.setup import GroupSetup, RunSetup
    >>> setup = RunSetup((GroupSetup("<b>a</b>", "ndim == 2", "SGD", {"lr": "0.1"}),
    ...                   GroupSetup("rest", "(fallback)", "Adam", {})), ("ndim == 2",), "the optimizer")
    >>> "&lt;b&gt;a&lt;/b&gt;" in groups_html(setup, None)
    True
"""

from __future__ import annotations

import datetime
import platform
from html import escape
from importlib import metadata as package_metadata

import mlx.core as mx

from multiopt_lab.device import describe_facts, device_facts
from multiopt_lab.io.rulefile import rules_to_toml
from multiopt_lab.palette import group_colour
from multiopt_lab.render.document import render_html
from multiopt_lab.render.numbers import grouped, percent
from multiopt_lab.render.reports import diagnostics_html
from multiopt_lab.reporting.figures import sparkline
from multiopt_lab.reporting.setup import RunSetup

__all__ = ["findings_html", "groups_html", "tree_html", "rules_html", "per_parameter_html",
           "environment_html", "facts_html"]

#: Parameters listed in the per-parameter table (the ones with the largest update ratio first).
PER_PARAMETER_ROWS = 200
#: The metric drawn as a sparkline per parameter, in order of preference.
_SPARK_METRICS = ("update_ratio", "update_norm", "grad_norm")


def findings_html(assignment) -> str:
    """The assignment's findings (errors, warnings, notes: dead and shadowed rules, near
    misses, broken optimizer contracts...), in the words every other surface uses.

    Example:
        >>> import mlx.core as mx
        >>> from multiopt_lab.partition.assignment import assign
        >>> "matches no parameter" in findings_html(assign({"w": mx.zeros((2,))}, ["ndim == 3"], ["conv", "adamw"]))
        True
    """
    return diagnostics_html(assignment.diagnostics)


def facts_html(facts) -> str:
    """``(name, value)`` pairs as a two-column table, values escaped.

    Example:
        >>> facts_html([("run", "<r>")])
        '<table class="mol-facts"><tr><th>run</th><td>&lt;r&gt;</td></tr></table>'
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

    Example:
        >>> from multiopt_lab.reporting.setup import GroupSetup, RunSetup
        >>> setup = RunSetup((GroupSetup("rest", "(fallback)", "Adam", {"lr": "0.001"}),), (), "x")
        >>> "Adam" in groups_html(setup, None)
        True
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
        if counts:
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

    Example:
        >>> import mlx.core as mx
        >>> from multiopt_lab.partition.assignment import assign
        >>> "<details" in tree_html(assign({"w": mx.zeros((2, 2))}, ["ndim == 2"]), "model")
        True
    """
    return render_html(assignment, root_name=root_name, legend=False, open_depth=4)


def rules_html(setup: RunSetup) -> str:
    """The rules as a rule file (TOML) anyone can load back with ``multiopt_lab.load_rules``.

    Example:
        >>> from multiopt_lab.reporting.setup import GroupSetup, RunSetup
        >>> setup = RunSetup((GroupSetup("a", 'glob("*</pre>*")'), GroupSetup("b", "(fallback)")),
        ...                  ('glob("*</pre>*")',), "x")
        >>> "&lt;/pre&gt;" in rules_html(setup)
        True
    """
    texts = [getattr(rule, "text", rule) for rule in setup.rules]
    if all(isinstance(t, str) for t in texts):
        body = rules_to_toml(list(setup.labels), texts)
    else:  # a Python callable is no data: name it
        body = "\n".join(f"# {g.label}: {g.rule}" for g in setup.groups)
        body += "\n# (Python callables: a rule file holds only rule expressions)"
    return f'<pre class="mol-rules">{escape(body)}</pre>'


def per_parameter_html(history, run: str | None, colours: dict[str, str]) -> str:
    """The per-parameter metrics a History recorded (``history.parameters``, a long frame of
    run, step, path, group, metric, value): the last value of each metric per parameter and
    a sparkline of its update ratio; ``""`` when none were recorded.

    Example:
        >>> per_parameter_html(object(), None, {})
        ''
    """
    frame = getattr(history, "parameters", None)
    if frame is None or not hasattr(frame, "empty") or frame.empty:
        return ""
    if run is not None and "run" in frame.columns:
        frame = frame[frame["run"] == run]
    if frame.empty:
        return ""
    frame = frame.sort_values("step", kind="stable")
    metrics = list(dict.fromkeys(frame["metric"].tolist()))
    spark = next((m for m in _SPARK_METRICS if m in metrics), metrics[0])
    last = frame.groupby(["path", "metric"], sort=False)["value"].last().unstack("metric")
    groups = frame.groupby("path", sort=False)["group"].last()
    series = {path: part["value"].tolist() for path, part in
              frame[frame["metric"] == spark].groupby("path", sort=False)}
    order = last[spark].sort_values(ascending=False, na_position="last").index.tolist() \
        if spark in last.columns else last.index.tolist()
    head = "".join(f"<th>{escape(m)}</th>" for m in metrics)
    rows = []
    for path in order[:PER_PARAMETER_ROWS]:
        group = str(groups.get(path, ""))
        values = "".join(f'<td class="mol-num">{_number(last.at[path, m]) if m in last.columns else ""}</td>'
                         for m in metrics)
        line = sparkline(series.get(path, []), colour=colours.get(group, "#8C8C8C"), log=spark.endswith("ratio"))
        rows.append(f'<tr data-path="{escape(path)}"><td><code>{escape(path)}</code></td>'
                    f"<td>{escape(group)}</td>{values}<td>{line}</td></tr>")
    more = len(order) - PER_PARAMETER_ROWS
    caption = (f"{len(order):,} parameters, largest {escape(spark)} first"
               + (f"; the first {PER_PARAMETER_ROWS} shown" if more > 0 else ""))
    return (f'<table class="mol-per-parameter"><caption>{caption}</caption><thead><tr><th>parameter</th>'
            f"<th>group</th>{head}<th>{escape(spark)} over steps</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


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

    Example:
        >>> "mlx" in environment_html(None, None)
        True
    """
    import multiopt_lab

    facts = device_facts()
    here = [("device", describe_facts(facts)), ("backend", facts.get("backend", "")),
            ("mlx", mx.__version__), ("multiopt_lab", multiopt_lab.__version__),
            ("python", platform.python_version()), ("platform", platform.platform()),
            ("numpy", _version("numpy")), ("pandas", _version("pandas")),
            ("matplotlib", _version("matplotlib")),
            ("made", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))]
    parts = []
    if history is not None and getattr(history, "runs", ()):
        meta = history.metadata(run)
        recorded = [("device", describe_facts(meta)), ("backend", meta.get("backend", "")),
                    ("mlx", meta.get("mlx_version", "")), ("started", meta.get("created", ""))]
        parts.append("<h3>Recorded on</h3>" + facts_html([(k, v) for k, v in recorded if v]))
    parts.append("<h3>This report made on</h3>" + facts_html(here))
    return "".join(parts)
