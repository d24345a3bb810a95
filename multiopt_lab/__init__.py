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

from multiopt_lab.core.assignment import Assignment, Move, assign
from multiopt_lab.core.diagnostics import CoverageError, Diagnostics
from multiopt_lab.core.rulefile import (
    RuleFileError,
    load_rules,
    rules_from_json,
    rules_from_toml,
    rules_to_json,
    rules_to_toml,
    save_rules,
)
from multiopt_lab.core.rules import (
    Rule,
    RuleError,
    as_rule,
    by_glob,
    by_ndim,
    by_regex,
    rule,
)
from multiopt_lab.core.table import ParameterTable

__version__ = "0.1.0"

__all__ = [
    "Assignment",
    "CoverageError",
    "Diagnostics",
    "Move",
    "ParameterTable",
    "Rule",
    "RuleError",
    "RuleFileError",
    "__version__",
    "as_rule",
    "assign",
    "by_glob",
    "by_ndim",
    "by_regex",
    "load_rules",
    "rule",
    "rules_from_json",
    "rules_from_toml",
    "rules_to_json",
    "rules_to_toml",
    "save_rules",
]
