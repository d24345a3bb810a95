"""One self-contained HTML file per run: ``multiopt_lab.report(optimizer, model, history)``.

The page holds the groups with their optimizers and settings, the findings,
the parameter tree, the rules as text, the training curves (inline SVG from
:mod:`multiopt_lab.plots`), the per-parameter metrics when recorded, and the
device and library versions. It opens offline, makes no request, reads with
JavaScript off (sections fold with ``<details>``) and escapes every label,
path and rule. ``python -m multiopt_lab report`` makes one from saved files.

This layer sits above ``render`` and ``plots`` (it draws with both);
matplotlib is imported only when a report draws curves.
"""

from multiopt_lab._src.reporting.report import Report, build_report, report

__all__ = ["Report", "report", "build_report"]
