"""The routing plan: computed once per gradient-tree structure, reused every step.

MLX's ``MultiOptimizer`` runs every filter on every parameter, then rebuilds and
merges sub-trees on every step. A :class:`RoutingPlan` does that work once for
a structure (paths, shapes, dtypes): it remembers which leaf goes to which
group and holds direct references to each leaf's per-parameter state dict
inside the sub-optimizer's own state tree, so a step is a flat loop of
``apply_single`` calls.

Example:
    >>> import mlx.core as mx
    >>> leaves = flatten_with_parameters({"w": mx.zeros((2,))}, {"w": mx.ones((2,))})
    >>> leaves.paths
    ['w']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlx.utils import tree_unflatten

from multiopt_lab.optimizer.batching import make_buckets

__all__ = ["FlatLeaves", "RoutingPlan", "flatten_with_parameters", "rebuild_tree",
           "state_entry", "group_part"]


@dataclass
class FlatLeaves:
    """Gradient leaves in ``tree_flatten`` order, with their parameters.

    Attributes:
        paths (list[str]): Dotted paths.
        gradients (list): Gradient arrays.
        parameters (list): The parameter at each path (looked up in the
            parameter tree, which may be a superset of the gradients).
    """

    paths: list[str]
    gradients: list[Any]
    parameters: list[Any]

    def signature(self) -> tuple[list, list]:
        """``(shapes, dtypes)`` of the gradients: with the paths, the structure."""
        return [g.shape for g in self.gradients], [g.dtype for g in self.gradients]


def flatten_with_parameters(gradients: Any, parameters: Any) -> FlatLeaves:
    """Flatten ``gradients`` and fetch the matching leaves of ``parameters``.

    Same keys and order as ``mlx.utils.tree_flatten(gradients)``; empty
    containers vanish. ``parameters`` is indexed like ``tree_map`` indexes its
    extra trees, so an ``nn.Module`` works as is.

    Example:
        >>> flatten_with_parameters({"a": [1]}, {"a": [2], "b": 3}).parameters
        [2]
    """
    leaves = FlatLeaves([], [], [])
    _collect_leaves(gradients, parameters, "", leaves)
    return leaves


# Module-level recursion on purpose: a nested function that calls itself sits
# in a reference cycle with its closure, and that cycle would keep this
# step's gradients and old parameters (a copy of the model) alive until
# Python's cyclic garbage collector happens to run.
def _collect_leaves(g: Any, p: Any, prefix: str, leaves: FlatLeaves) -> None:
    if isinstance(g, dict):
        items = g.items()
    elif isinstance(g, (list, tuple)):
        items = enumerate(g)
    else:
        leaves.paths.append(prefix[:-1])
        leaves.gradients.append(g)
        leaves.parameters.append(p)
        return
    for key, child in items:
        _collect_leaves(child, p[key], f"{prefix}{key}.", leaves)


def rebuild_tree(template: Any, leaves: list[Any]) -> Any:
    """A copy of ``template``'s containers with its leaves replaced, in order.

    Example:
        >>> rebuild_tree({"a": [0, 0], "b": {}}, [1, 2])
        {'a': [1, 2], 'b': {}}
    """
    return _rebuilt(template, iter(leaves))


def _rebuilt(node: Any, leaves: Any) -> Any:
    # Module-level for the same reason as _collect_leaves.
    if isinstance(node, dict):
        return {k: _rebuilt(v, leaves) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebuilt(v, leaves) for v in node]
    if isinstance(node, tuple):
        children = [_rebuilt(v, leaves) for v in node]
        return type(node)(*children) if hasattr(node, "_fields") else tuple(children)
    return next(leaves)


def state_entry(state: Any, path: str) -> Any:
    """The per-parameter state dict at ``path`` in a sub-optimizer's state tree.

    Raises:
        KeyError, IndexError, TypeError: When the tree has no entry there.

    Example:
        >>> state_entry({"layers": [{"w": {"v": 1}}]}, "layers.0.w")
        {'v': 1}
    """
    node = state
    for key in path.split(".") if path else ():
        node = node[int(key)] if isinstance(node, (list, tuple)) else node[key]
    return node


def group_part(paths: list[str], values: list[Any], whole_tree: Any | None = None) -> Any:
    """The sub-tree MLX's ``MultiOptimizer`` hands a group: ``tree_unflatten`` or ``{}``.

    Args:
        paths, values: The group's leaves in flatten order.
        whole_tree: With a single optimizer MLX hands over the gradient tree
            unchanged (empty dicts of parameterless modules included); pass
            it here to get the same.

    Example:
        >>> group_part(["a.0"], [1])
        {'a': [1]}
        >>> group_part([], [])
        {}
    """
    if whole_tree is not None:
        return whole_tree
    return tree_unflatten(list(zip(paths, values))) if paths else {}


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

    def matches(self, leaves: FlatLeaves, optimizers: list[Any]) -> bool:
        """True when ``leaves`` has this structure and no state tree was replaced."""
        if leaves.paths != self.paths:
            return False
        shapes, dtypes = leaves.signature()
        if shapes != self.shapes or dtypes != self.dtypes:
            return False
        return all(
            o._initialized and o._state is tree
            for o, tree in zip(optimizers, self.state_trees)
        )

    def bind_states(self, optimizers: list[Any], runs_own_code: list[bool],
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
            states = [state_entry(tree, self.paths[i]) for i in self.indices[g]]
            self.states.append(states)
            if batch:
                buckets, single = make_buckets(optimizer, self.indices[g], leaves.gradients,
                                               leaves.parameters, states)
            else:
                buckets, single = [], range(len(states))
            self.buckets.append(buckets)
            self.singles.append([(self.indices[g][k], states[k]) for k in single])
        self.state_trees = [o._state for o in optimizers]
