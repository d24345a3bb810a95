"""What an optimizer expects a checkpoint to hold: each group's paths, shapes and dtypes.
"""

from __future__ import annotations

from typing import Any

import mlx.nn as nn
import numpy as np

from multiopt_lab._src.optimizer.state_layout import existing_entry, per_parameter_paths
from multiopt_lab._src.partition.rule_failures import assign_despite_failures
from multiopt_lab._src.partition.table import ParameterTable
from multiopt_lab._src.trees.flatten import flatten_tree

__all__ = ["expected_groups", "frozen_or_held"]


def expected_groups(optimizer: Any, parameters: Any) -> list[dict[str, tuple]] | None:
    """Per group, ``path -> (shape, dtype)`` the optimizer expects; None when unknown.

    From ``parameters`` when given (routed with the optimizer's rules), else
    from the structure the optimizer last stepped on (its ``routing_plan``).
    """
    n = len(optimizer.optimizers)
    groups: list[dict[str, tuple]] = [{} for _ in range(n)]
    if parameters is not None:
        table = ParameterTable.from_tree(parameters)
        winners = np.asarray(optimizer.assign(table).winners)
        # One (shape, dtype) per structure, read from its first array, shared by its rows.
        ids = table.structure_ids
        _, first = np.unique(ids, return_index=True)
        layouts = [(table.shapes[i], table.arrays[i].dtype) for i in first.tolist()]
        for g in range(n):  # each group's rows in table order, joined in C
            rows = np.flatnonzero(winners == g)
            groups[g] = dict(zip(map(table.paths.__getitem__, rows.tolist()),
                                 map(layouts.__getitem__, ids[rows].tolist())))
        return groups
    plan = getattr(optimizer, "routing_plan", None)  # MLX's MultiOptimizer has none
    if plan is None:
        return None
    for path, shape, dtype, g in zip(plan.paths, plan.shapes, plan.dtypes, plan.group_index):
        groups[g][path] = (tuple(shape), dtype)
    return groups


def frozen_or_held(optimizer: Any, parameters: Any,
                   expected: list[dict[str, tuple]] | None) -> list[dict[str, Any]] | None:
    """Per group, the state a checkpoint may hold beyond ``expected`` (``path -> layout``):
    what MLX keeps for parameters that are frozen now.

    MLX's optimizers keep the state of a parameter that stops training
    (``model.freeze()``), and use it again when it is unfrozen; a checkpoint
    taken meanwhile holds it. Such an entry is accepted (and loaded) when it
    belongs to a frozen parameter of ``parameters`` (an ``nn.Module``) that
    the optimizer's rules route to that group, with that parameter's shape and
    dtype (layout ``(shape, dtype)``); or, whatever ``parameters`` is, when
    the live optimizer holds state for that path in that group, with the
    same keys, shapes and dtypes (layout: the live entry). A frozen parameter
    the rules fail on (``shape[1]`` on a bias) may sit in any group.

    Returns None when ``expected`` is None (nothing is checked then).
    """
    if expected is None:
        return None
    n = len(optimizer.optimizers)
    optional: list[dict[str, Any]] = [{} for _ in range(n)]
    for g, sub_optimizer in enumerate(optimizer.optimizers):
        want = expected[g]
        for path in per_parameter_paths(flatten_tree(sub_optimizer.state)):
            if path not in want:
                entry = existing_entry(sub_optimizer.state, path)
                if entry is not None:
                    optional[g][path] = entry
    if isinstance(parameters, nn.Module) and hasattr(optimizer, "filters"):
        everything = ParameterTable.from_tree(parameters.parameters(), model=parameters)
        trainable = set().union(*(want.keys() for want in expected))
        if len(everything) > len(trainable):
            labels = getattr(optimizer, "labels", None)
            assignment, failures = assign_despite_failures(everything, optimizer.filters, labels)
            anywhere = {f.path for f in failures}
            for path, g, array in zip(everything.paths, assignment.winners.tolist(),
                                      everything.arrays):
                if path in trainable:
                    continue
                layout = (tuple(array.shape), array.dtype)
                for group in (range(n) if path in anywhere else (g,)):
                    optional[group].setdefault(path, layout)
    return optional


