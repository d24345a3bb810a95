"""A run as one self-contained HTML file: what to send someone without Python.

:func:`report` gathers, for an optimizer, a model and (optionally) a History:
the groups with their optimizers and settings, the findings, the parameter
tree, the rules as a rule file, the training curves, the per-parameter
metrics when recorded, and the device and library versions. ``save`` writes
one file that opens offline, makes no request and needs no JavaScript.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlx.nn as nn
import mlx.optimizers as optim

from multiopt_lab._src.arguments import checked, is_text, kind, optional
from multiopt_lab._src.partition.arguments import check_parameters
from multiopt_lab._src.training.arguments import check_history
from multiopt_lab._src.io.atomic import write_text_atomically
from multiopt_lab._src.partition.assignment import assign
from multiopt_lab._src.render.numbers import grouped, plural
from multiopt_lab._src.reporting import sections
from multiopt_lab._src.reporting.figures import curves_svg
from multiopt_lab._src.reporting.page import fragment_html, page_html
from multiopt_lab._src.reporting.setup import RunSetup, setup_of_optimizer
from multiopt_lab._src.training.history import History

__all__ = ["Report", "report", "build_report"]


class Report:
    """A run's report: its sections as HTML, a page to save, and a notebook view.

    Attributes:
        title (str): The heading.
        summary (str): The line under it (model, groups, run, last loss).
        sections (tuple[str, ...]): The section titles, in order.

    Example:
        >>> r = Report("Run", [("Notes", "<p>hi</p>", True)], "1 group")
        >>> r.sections, "<p>hi</p>" in r.html()
        (('Notes',), True)
    """

    def __init__(self, title: str, parts, summary: str = ""):
        self.title = title
        self.summary = summary
        self._parts = list(parts)

    @property
    def sections(self) -> tuple[str, ...]:
        """The section titles, in order."""
        return tuple(name for name, _, _ in self._parts)

    def section_html(self, title: str) -> str:
        """The HTML body of one section (``KeyError`` naming the sections when absent)."""
        for name, body, _ in self._parts:
            if name == title:
                return body
        raise KeyError(f"no section {title!r}; this report has {', '.join(map(repr, self.sections))}")

    def html(self) -> str:
        """The whole page: a document with its stylesheet inline, no script, no link."""
        return page_html(self.title, self._parts, self.summary)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page to ``path`` (UTF-8, atomically: a failure leaves any old file whole).

        Returns:
            Path: The file written.

        Raises:
            ValueError: ``path`` does not end with ``.html`` or ``.htm``.
        """
        target = Path(os.fspath(path))
        if target.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"a report is an HTML page: expected a path ending in .html, got {str(target)!r}")
        write_text_atomically(target, self.html())
        return target

    def _repr_html_(self) -> str:
        return fragment_html(self.title, self._parts, self.summary)

    def __repr__(self) -> str:
        return f"Report({self.title!r}, sections={list(self.sections)})"


def _check_history(history, run):
    if history is None:
        return None
    if not isinstance(history, History):
        raise TypeError(f"history must be a multiopt_lab History (what train() returns, or "
                        f"History.load('run.csv')), found {type(history).__name__}")
    if run is None:
        return history.current_run or (history.runs[-1] if history.runs else None)
    if run not in history.runs:
        shown = ", ".join(map(repr, history.runs)) or "none"
        raise ValueError(f"run {run!r} is not in the History; its runs are {shown}")
    return run


def build_report(setup: RunSetup, model: Any, history: History | None = None, *, run: str | None = None,
                 title: str | None = None, root_name: str | None = None) -> Report:
    """The report of a setup (see :mod:`~multiopt_lab._src.reporting.setup`) on a model.

    :func:`report` calls it with the setup of a live optimizer; the command
    line with the setup read from files.
    """
    if not isinstance(model, (nn.Module, dict, list, tuple)):
        raise TypeError(f"model must be an nn.Module or a parameter tree (dict), found {type(model).__name__}")
    run = _check_history(history, run)
    assignment = assign(model, list(setup.rules), list(setup.labels),
                        optimizers=list(setup.optimizers) or None)
    name = root_name or (type(model).__name__ if isinstance(model, nn.Module) else "model")
    table = assignment.table
    summary = (f"{name}: {plural(len(table), 'parameter')}, {grouped(sum(table.sizes))} elements "
               f"in {len(setup.groups)} groups")
    parts = [("Groups and optimizers", sections.groups_html(setup, assignment), True),
             ("Findings", sections.findings_html(assignment), True),
             ("Parameter tree", sections.tree_html(assignment, name), True),
             ("Rules", sections.rules_html(setup), True)]
    if run is not None and history is not None:  # a run comes only with a History
        last_step, loss = history.last_step(run), history.last("loss", run=run)
        summary += f"; run {run!r}: {grouped(last_step or 0)} steps" + (
            f", last loss {loss:.4g}" if loss is not None else "")
        parts.append(("Curves", curves_svg(history, run=run), True))
        per_parameter = sections.per_parameter_html(history, run)
        if per_parameter:
            parts.append(("Per-parameter metrics", per_parameter, True))
    parts.append(("Environment", sections.environment_html(history, run), True))
    return Report(title or (f"Run report: {run}" if run else f"Report: {name}"), parts, summary)


@checked(optimizer=kind(optim.MultiOptimizer, "a MultiOptimizer (multiopt_lab's or mlx.optimizers')",
                        "a report describes how groups of parameters are split between optimizers: "
                        "pass the MultiOptimizer that trains"),
         model=check_parameters, history=check_history, run=optional(is_text),
         title=optional(is_text))
def report(optimizer: Any, model: Any, history: History | None = None, *, run: str | None = None,
           title: str | None = None) -> Report:
    """A one-file report of a run, to save as HTML or show in a notebook.

    It holds the groups with their optimizers and settings (learning rate or
    schedule, hyperparameters), the findings (dead or shadowed rules, near
    misses, ...), the parameter tree, the rules as a rule file, and, with a
    History, the training curves, the per-parameter metrics when recorded,
    and where the run was recorded; the device and library versions always.

    Args:
        optimizer (MultiOptimizer): multiopt_lab's or ``mlx.optimizers``'.
        model (nn.Module | dict): The model (or its parameter tree) it trains.
        history (History, optional): The recorded run. Default: ``None``.
        run (str, optional): Which run of ``history``. Default: its current run.
        title (str, optional): The heading. Default: ``"Run report: <run>"``.

    Returns:
        Report: ``save("run.html")`` writes the page; a notebook shows it.

    Raises:
        TypeError: ``optimizer`` is not a multi-optimizer, ``model`` not a model,
            ``history`` not a History.
        ValueError: ``run`` is not one of ``history``'s runs.

    Example:
        >>> import mlx.optimizers as optim
        >>> import multiopt_lab as mol
        >>> from multiopt_lab.examples import MLP
        >>> optimizer = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"])
        >>> mol.report(optimizer, MLP(4, [8], 2)).summary
        'MLP: 4 parameters, 58 elements in 2 groups'
    """
    run = _check_history(history, run)
    last_step = (history.last_step(run) if history is not None and run is not None else None) or 1000
    return build_report(setup_of_optimizer(optimizer, last_step), model, history, run=run, title=title)
