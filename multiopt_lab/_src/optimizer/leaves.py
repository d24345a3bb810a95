"""The leaves of one optimizer step, and the part of the tree MLX hands each group.

A step flattens the gradients with their parameters in one pass (checking
that they fit, path by path, before any state changes);
``benchmarks/bench_tree_walkers.py`` times it against ``tree_flatten`` with
a ``tree_map`` over the parameters. Generic tree helpers (flatten, unflatten,
look up, rebuild) live in :mod:`multiopt_lab._src.trees`.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable
from typing import Any

from mlx.utils import tree_unflatten

from multiopt_lab._src.trees.flatten import has_leaves

__all__ = ["FlatLeaves", "GradientMismatchError", "flatten_with_parameters", "group_part",
           "pad_lists_like"]


class GradientMismatchError(ValueError, KeyError):
    """Gradients that do not fit the parameters: a path with no parameter, or another shape.

    A ``ValueError`` (what MLX raises on a shape it cannot broadcast) and a
    ``KeyError`` (what it raises on a missing key), so code written for
    either keeps working; the message names the path and what was expected.
    """

    __str__ = Exception.__str__


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
    containers vanish, and the parameters may lack them (MLX's
    ``MultiOptimizer`` returns parameters without the empty dict of a
    parameterless module). ``parameters`` is indexed like ``tree_map``
    indexes its extra trees, so an ``nn.Module`` works as is.

    Raises:
        GradientMismatchError: A gradient has no parameter at its path, is
            not an array, or has another shape than its parameter (the
            message names the path, the expected and the found shape).
    """
    leaves = FlatLeaves([], [], [])
    wrong: list[str] = []
    _collect_leaves(gradients, parameters, "", leaves, wrong)
    if wrong:
        raise GradientMismatchError(
            f"the gradients do not fit the parameters: {'; '.join(wrong[:5])}"
            + (f"; and {len(wrong) - 5} more" if len(wrong) > 5 else "")
            + ". Nothing was updated; pass the gradients of these very parameters "
              "(nn.value_and_grad(model, loss)(model, ...) gives them)")
    return leaves


# Module-level recursion on purpose: a nested function that calls itself sits
# in a reference cycle with its closure, and that cycle would keep this
# step's gradients and old parameters (a copy of the model) alive until
# Python's cyclic garbage collector happens to run.
def _collect_leaves(g: Any, p: Any, prefix: str, leaves: FlatLeaves, wrong: list[str]) -> None:
    items: Iterable[tuple[Any, Any]]
    if isinstance(g, dict):
        items = g.items()
    elif isinstance(g, (list, tuple)):
        items = enumerate(g)
    else:
        try:
            if g.shape != p.shape:
                wrong.append(_mismatch(prefix[:-1], g, p))
        except AttributeError:  # not arrays
            wrong.append(_mismatch(prefix[:-1], g, p))
        leaves.paths.append(prefix[:-1])
        leaves.gradients.append(g)
        leaves.parameters.append(p)
        return
    for key, child in items:
        try:
            below = p[key]
        except (KeyError, IndexError, TypeError):
            if has_leaves(child):
                wrong.append(f"no parameter at {prefix + str(key)!r} (the parameters "
                             f"{_keys_of(p)})")
            continue  # an empty container in the gradients only: nothing to update
        _collect_leaves(child, below, f"{prefix}{key}.", leaves, wrong)


def _mismatch(path: str, g: Any, p: Any) -> str:
    if not hasattr(g, "shape"):
        return f"the gradient at {path!r} is a {type(g).__name__}, expected an mx.array"
    if not hasattr(p, "shape"):
        return f"the parameter at {path!r} is a {type(p).__name__}, not an array"
    return (f"the gradient at {path!r} has shape {tuple(g.shape)}, expected {tuple(p.shape)} "
            "(its parameter's)")


def _keys_of(node: Any) -> str:
    if isinstance(node, dict):
        keys = list(node)
        shown = ", ".join(map(repr, keys[:8])) + (", ..." if len(keys) > 8 else "")
        return f"have keys {shown}" if keys else "have no keys there"
    if isinstance(node, (list, tuple)):
        return f"have a list of {len(node)} there"
    return f"have a {type(node).__name__} there"


def group_part(paths: list[str], values: list[Any], whole_tree: Any | None = None) -> Any:
    """The sub-tree MLX's ``MultiOptimizer`` hands a group: ``tree_unflatten`` or ``{}``.

    Args:
        paths, values: The group's leaves in flatten order.
        whole_tree: With a single optimizer MLX hands over the gradient tree
            unchanged (empty dicts of parameterless modules included); pass
            it here to get the same.
    """
    if whole_tree is not None:
        return whole_tree
    return tree_unflatten(list(zip(paths, values))) if paths else {}


def pad_lists_like(part: Any, state: Any) -> Any:
    """``part`` with each list at least as long as the state's list at the same place.

    Freezing trailing list entries (``layers.2`` of 3) after training gives a
    shorter gradient list than the state holds; MLX's ``Optimizer.init``
    indexes the gradients by the state's length and raises IndexError.
    """
    if isinstance(part, dict) and isinstance(state, dict):
        return {k: pad_lists_like(v, state[k]) if k in state else v for k, v in part.items()}
    if isinstance(part, (list, tuple)) and isinstance(state, (list, tuple)):
        padded = [pad_lists_like(v, s) for v, s in zip(part, state)] + list(part[len(state):])
        return type(part)(padded + [{} for _ in range(len(state) - len(part))])
    return part
