"""multiopt_lab: split a model's parameters between MLX optimizers, see the
split, edit it live and watch each group train.

Importing this package loads only mlx, numpy and pandas: the widgets
(``multiopt_lab.widgets``) and figures (``multiopt_lab.plots``) are imported
on demand.

Example:
    >>> import multiopt_lab as mol
    >>> mol.rule('ndim == 2 and not glob("*embed*")')
    Rule('ndim == 2 and not glob("*embed*")')
"""

from multiopt_lab._src.device import require_backend

require_backend()  # one clear message on Linux without mlx[cpu] / mlx[cuda*]

from multiopt_lab._src.partition.assignment import Assignment, Move, assign
from multiopt_lab._src.io.checkpoint import LoadReport, load_state, save_state
from multiopt_lab._src.training.compile_step import CompiledStep, compile_step
from multiopt_lab._src.partition.diagnostics import CoverageError, Diagnostics
from multiopt_lab._src.partition.findings import Finding, FindingWarning
from multiopt_lab._src.partition.contracts import OptimizerContract, declare_contract
from multiopt_lab._src.distributed.data_parallel import DataParallel, OutOfSyncError
from multiopt_lab._src.distributed.checkpoint import load_checkpoint, save_checkpoint
from multiopt_lab._src.distributed.launch import DistributedRunError, launch
from multiopt_lab._src.distributed.guard import RankGuard
from multiopt_lab._src.training.history import History
from multiopt_lab._src.training.loop_activity import training_in_progress
from multiopt_lab._src.optimizer.multi_optimizer import MultiOptimizer
from multiopt_lab._src.optimizer.requests import PendingRepartition
from multiopt_lab._src.io.rulefile import (
    RuleFileError,
    load_rules,
    rules_from_json,
    rules_from_toml,
    rules_to_json,
    rules_to_toml,
    save_rules,
)
from multiopt_lab._src.optimizer_file.classes import register_optimizer
from multiopt_lab._src.optimizer_file.save_load import load_optimizer, save_optimizer
from multiopt_lab._src.rules import (
    Rule,
    RuleError,
    as_rule,
    by_glob,
    by_ndim,
    by_regex,
    rule,
)
from multiopt_lab._src.partition.table import ParameterTable
from multiopt_lab import recipes
from multiopt_lab._src.training.train import train
from multiopt_lab._src.display import register_bundle, register_html
from multiopt_lab._src.training.progress import register_notebook_progress
from multiopt_lab._src.render import render_html, render_text
from multiopt_lab._src.render.rich import assignment_repr_html, optimizer_repr_html
from multiopt_lab._src.render.reports import diagnostics_html, history_html, moves_html
from multiopt_lab._src.reporting import Report, report  # draws curves with matplotlib only when asked

from multiopt_lab._src.version import __version__

__all__ = [
    "Assignment",
    "CompiledStep",
    "CoverageError",
    "DataParallel",
    "Diagnostics",
    "DistributedRunError",
    "Finding",
    "FindingWarning",
    "History",
    "LabWidget",
    "LoadReport",
    "Move",
    "MultiOptimizer",
    "OptimizerContract",
    "OutOfSyncError",
    "ParameterTable",
    "ParameterTreeWidget",
    "PendingRepartition",
    "RankGuard",
    "Report",
    "Rule",
    "RuleError",
    "RuleEditorWidget",
    "RuleFileError",
    "TrainingMonitorWidget",
    "__version__",
    "as_rule",
    "assign",
    "by_glob",
    "by_ndim",
    "by_regex",
    "compile_step",
    "declare_contract",
    "launch",
    "load_checkpoint",
    "load_optimizer",
    "load_rules",
    "load_state",
    "render_html",
    "render_text",
    "recipes",
    "register_optimizer",
    "report",
    "rule",
    "rules_from_json",
    "rules_from_toml",
    "rules_to_json",
    "rules_to_toml",
    "save_checkpoint",
    "save_optimizer",
    "save_rules",
    "save_state",
    "train",
    "training_in_progress",
]

# The recipes' own optimizer class goes into rule files by name like MLX's.
register_optimizer(recipes.StackedMuon)

# Core objects show themselves as trees through this registry, so that core
# never imports the render layer above it.
register_html("assignment", assignment_repr_html)
register_html("optimizer", optimizer_repr_html)
register_html("diagnostics", diagnostics_html)
register_html("moves", moves_html)
register_html("history", history_html)


def _notebook_progress(total, stop):
    # The package sits above every layer, so it may reach the widgets; lazily,
    # because ipywidgets is loaded only when a notebook trains.
    from multiopt_lab._src.widgets.progress import NotebookProgress

    return NotebookProgress(total, stop)


register_notebook_progress(_notebook_progress)


def _figure_view(figure):
    # A figure in a notebook kernel shows in a view that follows the page's
    # theme; the widgets (ipywidgets) load only when a figure is displayed.
    from multiopt_lab._src.widgets.figure_view import figure_bundle

    return figure_bundle(figure)


register_bundle("figure", _figure_view)

# The widgets import ipywidgets (and the monitor matplotlib): load them on
# first use so that ``import multiopt_lab`` stays free of front-end libraries.
_WIDGETS = ("LabWidget", "ParameterTreeWidget", "RuleEditorWidget", "TrainingMonitorWidget")


def __getattr__(name):
    if name in _WIDGETS:
        import multiopt_lab.widgets

        return getattr(multiopt_lab.widgets, name)
    raise AttributeError(f"module 'multiopt_lab' has no attribute {name!r}")
