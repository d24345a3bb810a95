"""Moving parameters between groups: state follows the optimizer, never half applied.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import mlx.core as mx
from mlx.utils import tree_flatten, tree_map_with_path

from multiopt_lab._src.partition.assignment import Move
from multiopt_lab._src.optimizer.leaves import group_part
from multiopt_lab._src.optimizer.state_layout import existing_entry
from multiopt_lab._src.trees.flatten import has_leaves

__all__ = ["Move", "migrated_states", "previous_owners", "moves_between", "fresh_state_tree"]


def previous_owners(paths: Sequence[str], group_index: Sequence[int],
                    optimizers: Sequence[Any]) -> dict[str, Any]:
    """``path -> optimizer object`` under the current routing.
    """
    return {p: optimizers[g] for p, g in zip(paths, group_index)}


def migrated_states(optimizers: Sequence[Any], group_paths: Sequence[Sequence[str]],
                    parameters: Any, previous: dict[str, Any],
                    fresh: list | None = None) -> list[dict]:
    """New state trees, one per optimizer, for a new routing; nothing is mutated.

    A parameter keeps its very state dict when its previous owner
    (``previous[path]``) is the same optimizer object and that optimizer
    holds state for it; otherwise its state is initialised by the new owner.
    Each tree has MLX's layout for the group (what ``tree_unflatten`` of the
    group's paths gives, or the whole tree with a single optimizer).

    Args:
        optimizers: The optimizers of the new routing, one per group.
        group_paths: The paths of each group, in flatten order.
        parameters: The parameter tree (shapes and dtypes for new states).
        previous: ``path -> optimizer`` that held the path before.
        fresh (list, optional): Receives every array initialised here (the
            caller evaluates them on its own thread, see ``fresh_state_tree``).
    """
    flat = dict(tree_flatten(parameters))
    trees = []
    for optimizer, paths in zip(optimizers, group_paths):
        kept = {}
        for path in paths:
            if previous.get(path) is optimizer:
                entry = existing_entry(optimizer.state, path)  # type: ignore[union-attr]  # `is` narrowed it to Any | None
                if entry:
                    kept[path] = entry
        whole = parameters if len(optimizers) == 1 else None
        part = group_part(list(paths), [flat[p] for p in paths], whole)
        trees.append(fresh_state_tree(optimizer, part, kept, fresh))
    return trees


def moves_between(paths: Sequence[str], previous: dict[str, Any], owners: dict[str, Any],
                  old_labels: dict[int, str], new_labels: dict[int, str]) -> list[Move]:
    """The parameters whose optimizer object changed, as :class:`Move` s.

    Args:
        paths: Paths in flatten order.
        previous, owners: ``path -> optimizer`` before and after.
        old_labels, new_labels: ``id(optimizer) -> label`` before and after.
    """
    moves = []
    for path in paths:
        before, after = previous.get(path), owners[path]
        if before is not after:
            source = None if before is None else old_labels.get(id(before))
            moves.append(Move(path, source, new_labels[id(after)]))
    return moves


def fresh_state_tree(optimizer: Any, part: Any, kept: dict[str, dict],
                     fresh: list | None = None) -> dict:
    """A new state tree for ``optimizer`` over ``part``: kept entries reused, others new.

    The optimizer-wide entries (``step``, ``learning_rate``, scheduled
    values: the top-level arrays) are carried over; each parameter's state is
    the very dict in ``kept`` when present (so it stays bit for bit) and is
    otherwise initialised with the optimizer's own ``init_single``; those new
    arrays are appended to ``fresh`` when given. They are lazy: MLX binds
    them to the stream of the thread that creates them, so a repartition
    made on another thread than the training loop's evaluates them first.
    """
    def entry(path: str, parameter: Any) -> dict:
        found = kept.get(path)
        if found is not None:
            return found
        new: dict = {}
        optimizer.init_single(parameter, new)
        if fresh is not None:
            fresh.extend(v for v in new.values() if isinstance(v, mx.array))
        return new

    tree = tree_map_with_path(entry, part) if has_leaves(part) else {}
    if not isinstance(tree, dict):
        raise TypeError(
            f"expected the parameters to be a dict at the top (a model's parameters), "
            f"found a {type(tree).__name__}"
        )
    top = {k: v for k, v in optimizer.state.items() if isinstance(v, mx.array)}
    top.update(tree)
    return top

