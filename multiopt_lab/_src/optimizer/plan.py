"""The routing plan: computed once per gradient-tree structure, reused every step.

MLX's ``MultiOptimizer`` runs every filter on every parameter, then rebuilds and
merges sub-trees on every step. A :class:`RoutingPlan` does that work once for
a structure (paths, shapes, dtypes): it remembers which leaf goes to which
group and holds direct references to each leaf's per-parameter state dict
inside the sub-optimizer's own state tree, so a step is a flat loop of
``apply_single`` calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any

from multiopt_lab._src.mlx_internals import is_initialized, state_dict
from multiopt_lab._src.optimizer.batching import make_buckets
from multiopt_lab._src.optimizer.leaves import FlatLeaves
from multiopt_lab._src.trees.lookup import node_at

__all__ = ["RoutingPlan"]


@dataclass
class RoutingPlan:
    """Where each leaf of one gradient structure goes, and where its state is.

    Attributes:
        paths (list[str]): Leaf paths in flatten order.
        shapes, dtypes (list): Leaf shapes and dtypes (the rest of the key).
        group_index (list[int]): Group of each leaf.
        indices (list[list[int]]): Leaves of each group, in flatten order.
        states (list[list[dict] | None]): Per group, the per-parameter state
            dict of each of its leaves (None for a group whose optimizer
            overrides ``apply_gradients`` and so runs through its own code).
        state_trees (list): Each sub-optimizer's state tree the references
            point into; a replaced tree invalidates the plan.
        buckets (list[list[Bucket]]): Per group, small leaves updated by one
            ``apply_single`` call each bucket (see ``batching``).
        singles (list[list[tuple[int, dict]]]): Per group, ``(leaf, state)``
            updated one call each.
    """

    paths: list[str]
    shapes: list[Any]
    dtypes: list[Any]
    group_index: list[int]
    indices: list[list[int]]
    states: list[list[dict] | None] = field(default_factory=list)
    state_trees: list[Any] = field(default_factory=list)
    buckets: list[list[Any]] = field(default_factory=list)
    singles: list[list[tuple[int, dict]]] = field(default_factory=list)

    def matches(self, leaves: FlatLeaves, optimizers: Sequence[Any]) -> bool:
        """True when ``leaves`` has this structure and no state tree was replaced."""
        if leaves.paths != self.paths:
            return False
        shapes, dtypes = leaves.signature()
        if shapes != self.shapes or dtypes != self.dtypes:
            return False
        return all(
            is_initialized(o) and state_dict(o) is tree
            for o, tree in zip(optimizers, self.state_trees)
        )

    def bind_states(self, optimizers: Sequence[Any], runs_own_code: list[bool],
                    leaves: FlatLeaves, batch: bool = True) -> None:
        """Collect direct references to every leaf's state dict (after ``init``)."""
        self.states, self.buckets, self.singles = [], [], []
        for g, optimizer in enumerate(optimizers):
            if runs_own_code[g]:
                self.states.append(None)
                self.buckets.append([])
                self.singles.append([])
                continue
            tree = optimizer.state
            states = [node_at(tree, self.paths[i]) for i in self.indices[g]]
            self.states.append(states)
            single: Sequence[int]
            if batch:
                buckets, single = make_buckets(optimizer, self.indices[g], leaves.gradients,
                                               leaves.parameters, states)
            else:
                buckets, single = [], range(len(states))
            self.buckets.append(buckets)
            self.singles.append([(self.indices[g][k], states[k]) for k in single])
        self.state_trees = [state_dict(o) for o in optimizers]
