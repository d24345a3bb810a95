"""Turn what a user hands a widget (a model, an optimizer...) into tables and assignments.
"""

from __future__ import annotations

import mlx.optimizers as optim

from multiopt_lab._src.partition.assignment import assign
from multiopt_lab._src.partition.rule_failures import RuleFailure, assign_despite_failures
from multiopt_lab._src.partition.table import ParameterTable
from multiopt_lab._src.rules import RuleError

__all__ = ["parameter_table", "root_name_of", "assignment_of", "optimizers_for", "is_assignment",
           "rules_in_force"]


def parameter_table(model_or_parameters) -> ParameterTable:
    """The trainable parameters of a model, a parameter tree or a table, as a table.

    A widget keeps its table while the model trains: it holds shapes and
    dtypes (:meth:`ParameterTable.without_values`), not the arrays of the
    moment it was built, which training would otherwise leave pinned.
    """
    return ParameterTable.from_tree(model_or_parameters).without_values()


def root_name_of(model_or_parameters) -> str:
    """The root row's name: the model's class name, else ``"model"``.
    """
    if callable(getattr(model_or_parameters, "trainable_parameters", None)):
        return type(model_or_parameters).__name__
    return "model"


def is_assignment(value) -> bool:
    """Whether ``value`` looks like an :class:`~multiopt_lab.Assignment`."""
    return all(hasattr(value, name) for name in ("group_index", "group_labels", "table", "diagnostics"))


def assignment_of(source, table: ParameterTable):
    """The assignment ``source`` gives the parameters in ``table``.

    Args:
        source: An ``Assignment`` (returned as is), a multiopt_lab ``MultiOptimizer``
            (its ``assign``), an ``mlx.optimizers.MultiOptimizer`` (its filters), or
            a single MLX optimizer (one group holding everything).
        table (ParameterTable): The parameters.

    Raises:
        TypeError: For anything else.
    """
    if is_assignment(source):
        return source
    if callable(getattr(source, "assign", None)):
        try:
            return source.assign(table)
        except RuleError as err:
            if getattr(err, "path", None) is None:
                raise
            # A rule in force fails on some parameter: show where the others are
            # (the editor shows the error on that rule, and is how to replace it).
            return rules_in_force(source, table)[0]
    if isinstance(source, optim.MultiOptimizer):
        # MLX appends its own catch-all filter for the last optimizer. With the
        # optimizers, the findings check what each expects of its parameters.
        optimizers = list(source.optimizers)
        return assign(table, list(source.filters[:len(optimizers) - 1]), optimizers=optimizers)
    if isinstance(source, optim.Optimizer):
        return assign(table, [], labels=[type(source).__name__.lower()], optimizers=[source])
    raise TypeError(
        f"expected an Assignment, a MultiOptimizer or an MLX optimizer, got {type(source).__name__}; "
        "pass e.g. MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ['ndim == 2'])"
    )


def rules_in_force(optimizer, table: ParameterTable) -> tuple:
    """``(assignment, failures)`` of a MultiOptimizer's rules on ``table``, even when a rule
    fails on some parameters (see
    :func:`~multiopt_lab._src.partition.rule_failures.assign_despite_failures`).
    """
    failures: tuple[RuleFailure, ...]
    assignment, failures = assign_despite_failures(table, optimizer.filters, optimizer.labels,
                                                   optimizers=list(optimizer.optimizers))
    return assignment, failures


def optimizers_for(source):
    """The optimizers behind ``source``, one per group, or ``None`` for an assignment.
    """
    if is_assignment(source):
        return None
    if hasattr(source, "optimizers"):
        return list(source.optimizers)
    if isinstance(source, optim.Optimizer):
        return [source]
    return None
