"""One step of every group: the function the eager and the compiled updates both run.

:func:`update_group` steps one group's optimizer over its leaves of a
:class:`~multiopt_lab._src.optimizer.plan.RoutingPlan`: its schedules and step
counter, then ``apply_single`` per leaf (or per bucket of small leaves, see
``batching``), or the optimizer's own ``apply_gradients`` when it overrides
it. :func:`update_groups` runs it for every group, in order.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Iterable, Sequence

from multiopt_lab._src.mlx_internals import advance_step
from multiopt_lab._src.optimizer.plan import RoutingPlan
from multiopt_lab._src.optimizer.leaves import FlatLeaves, group_part
from multiopt_lab._src.trees.lookup import node_at

__all__ = ["update_group", "update_groups"]


def update_groups(optimizers: Sequence[Any], plan: RoutingPlan, leaves: FlatLeaves,
                  gradients: Any, parameters: Any, *, batched: bool,
                  recording: bool, per_parameter: bool = False) -> tuple[list, list[list]]:
    """Every group's update: the new leaves, and per group its ``(gradient, old, new)`` pieces.

    Args:
        optimizers: One optimizer per group, in the plan's order.
        plan: Where each leaf goes and where its state is.
        leaves: This step's gradients and parameters, flat.
        gradients, parameters: The trees they came from (handed to an
            optimizer that runs its own ``apply_gradients``).
        batched: Update the plan's buckets of small leaves in one call each.
        recording: Return the pieces the metrics need (empty lists otherwise).
        per_parameter: Return, when recording, pieces that say which leaves
            they hold: ``(leaf index, (gradient, old, new))`` for one leaf, or
            ``(leaf indices, leaf sizes, (gradient, old, new))`` for a bucket's
            concatenation (its sums per leaf are taken from it, without a copy).
    """
    new: list = [None] * len(leaves.paths)
    pieces = [update_group(g, optimizer, plan, leaves, gradients, parameters, new,
                           batched=batched, recording=recording, per_parameter=per_parameter)
              for g, optimizer in enumerate(optimizers)]
    return new, pieces


def update_group(g: int, optimizer: Any, plan: RoutingPlan, leaves: FlatLeaves, gradients: Any,
                 parameters: Any, new: list, *, batched: bool, recording: bool,
                 per_parameter: bool = False) -> list:
    """Step group ``g``: write its new leaves into ``new``; return its pieces when recording.

    Every group's step counter advances, even an empty group's, as in MLX.
    With ``per_parameter`` each piece says which leaves it holds (see
    :func:`update_groups`).
    """
    grads, params = leaves.gradients, leaves.parameters
    indices = plan.indices[g]
    states = plan.states[g]
    if states is None:
        _run_own_code(optimizer, indices, leaves, gradients, parameters, new,
                      whole=len(plan.states) == 1)
        if not recording:
            return []
        triples = [(grads[i], params[i], new[i]) for i in indices]
        return list(zip(indices, triples)) if per_parameter else triples
    advance_step(optimizer)  # schedules, then the step counter, as MLX's apply_gradients
    apply_single = optimizer.apply_single
    pieces: list = []
    pairs: Iterable[tuple[int, dict]]
    if batched:
        for bucket in plan.buckets[g]:
            flat = bucket.apply(apply_single, grads, params, new)
            if recording:
                pieces.append((tuple(bucket.indices), bucket.sizes, flat) if per_parameter else flat)
        pairs = plan.singles[g]
    else:
        pairs = zip(indices, states)
    for i, state in pairs:
        new[i] = apply_single(grads[i], params[i], state)
        if recording:
            triple = (grads[i], params[i], new[i])
            pieces.append((i, triple) if per_parameter else triple)
    return pieces


def _run_own_code(optimizer: Any, indices: list[int], leaves: FlatLeaves, gradients: Any,
                  parameters: Any, new: list, whole: bool) -> None:
    # An optimizer that overrides apply_gradients (a nested MultiOptimizer,
    # a custom clipping optimizer) gets its sub-tree, as in MLX; with a single
    # group MLX hands it the whole gradient tree.
    paths = [leaves.paths[i] for i in indices]
    part = group_part(paths, [leaves.gradients[i] for i in indices], gradients if whole else None)
    result = optimizer.apply_gradients(part, parameters)
    for i, path in zip(indices, paths):
        new[i] = node_at(result, path)
