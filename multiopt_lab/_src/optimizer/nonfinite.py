"""Skip an optimizer step whose gradients, updates or new state hold a NaN or an inf, lazily.

``MultiOptimizer(..., skip_nonfinite=True)`` calls a :class:`NonfiniteGuard`
around each update: :meth:`~NonfiniteGuard.before` keeps references to every
group's state (MLX arrays are immutable, so this copies nothing), and
:meth:`~NonfiniteGuard.after` computes one finite flag per group (its
gradients, its new parameters and its new optimizer state) and replaces
every new parameter and state array by ``mx.where(all_finite, new, old)``.
No value is read back to Python, so the step stays lazy (no sync) and the
same code runs inside ``mx.compile``. The guard's arrays (skipped-step count,
per-group flags of the last step) live in the optimizer's ``state`` under
``"nonfinite"`` so a compiled step carries them out.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import mlx.core as mx

from multiopt_lab._src.trees.rebuild import copy_containers

__all__ = ["NonfiniteGuard", "all_finite", "restore_where"]


def all_finite(arrays: Sequence[Any]) -> mx.array:
    """A lazy scalar bool: True when every element of every array is finite.

    Integer arrays are always finite; an empty list gives True.
    """
    flags = [mx.all(mx.isfinite(a)) for a in arrays if mx.issubdtype(a.dtype, mx.inexact)]
    if not flags:
        return mx.array(True)
    return flags[0] if len(flags) == 1 else mx.all(mx.stack(flags))


def _state_arrays(tree: Any) -> list:
    """Every array leaf of a state tree (dicts and lists)."""
    if isinstance(tree, mx.array):
        return [tree]
    values = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, (list, tuple)) else ()
    return [leaf for value in values for leaf in _state_arrays(value)]


def restore_where(keep_new: mx.array, current: Any, before: Any) -> None:
    """In place: every array leaf of ``current`` becomes ``where(keep_new, leaf, old leaf)``.

    Containers are updated in place because the optimizer holds references to
    them. A leaf ``before`` lacks (state created by this update) is left as is.
    """
    if isinstance(current, dict) and isinstance(before, dict):
        for key, value in current.items():
            if key in before:
                if isinstance(value, mx.array) and isinstance(before[key], mx.array):
                    current[key] = _where(keep_new, value, before[key])
                else:
                    restore_where(keep_new, value, before[key])
    elif isinstance(current, list) and isinstance(before, list):
        for i, value in enumerate(current[: len(before)]):
            if isinstance(value, mx.array) and isinstance(before[i], mx.array):
                current[i] = _where(keep_new, value, before[i])
            else:
                restore_where(keep_new, value, before[i])


def _where(keep_new: mx.array, new: mx.array, old: mx.array) -> mx.array:
    if new.shape != old.shape:
        return new  # re-initialised by this update (e.g. after a repartition): nothing to keep
    return mx.where(keep_new, new, old).astype(new.dtype)


class NonfiniteGuard:
    """Per-step finite check and lazy rollback for a multi-group optimizer.

    Args:
        groups (int): Number of groups (one finite flag each).

    Attributes:
        arrays (dict): ``{"skipped": int32 count, "finite": bool per group of
            the last step}``; the same dict object for the guard's lifetime
            (a compiled step's state holds it).
    """

    def __init__(self, groups: int):
        if groups < 1:
            raise ValueError(f"expected at least one group, found {groups}")
        self.groups = groups
        self.arrays: dict[str, mx.array] = {}
        self.reset()

    def reset(self) -> None:
        """Zero the count and mark every group finite."""
        self.arrays.clear()
        self.arrays.update(skipped=mx.array(0, mx.int32), finite=mx.ones((self.groups,), mx.bool_))
        mx.eval(self.arrays["finite"])  # not bound to this thread's stream: any thread may train

    def load(self, arrays: Any) -> None:
        """Take the arrays of a state set on the optimizer (``state["nonfinite"]``)."""
        if not isinstance(arrays, dict) or set(arrays) != {"skipped", "finite"}:
            self.reset()
            return
        finite = arrays["finite"]
        if getattr(finite, "shape", None) != (self.groups,):
            raise ValueError(f"expected state['nonfinite']['finite'] with {self.groups} flags, "
                             f"found shape {getattr(finite, 'shape', None)}")
        self.arrays.update(skipped=arrays["skipped"], finite=finite)

    def before(self, optimizers: Sequence[Any]) -> list:
        """The state of every group now, to roll back to (no array is copied)."""
        return [copy_containers(o.state) for o in optimizers]

    def after(self, optimizers: Sequence[Any], before: list, gradients: Sequence[Any],
              parameters: Sequence[Any], new: list, indices: Sequence[Sequence[int]]) -> list:
        """Check this update; if anything is not finite, undo it, lazily.

        Args:
            optimizers: The groups' optimizers, already stepped.
            before: What :meth:`before` returned.
            gradients, parameters, new: Flat lists, one entry per parameter.
            indices: Per group, the positions of its parameters in those lists.

        Returns:
            list: ``new`` where the step is kept, the old parameters otherwise.
        """
        # The new state too: a finite gradient of 1e38 stores inf in AdamW's v while
        # the update it gives (m / (sqrt(v) + eps)) is a finite 0.
        flags = mx.stack([all_finite([gradients[i] for i in group] + [new[i] for i in group]
                                     + _state_arrays(optimizer.state))
                          for optimizer, group in zip(optimizers, indices)])
        keep = mx.all(flags)
        for optimizer, old in zip(optimizers, before):
            restore_where(keep, optimizer.state, old)
        self.arrays["finite"] = flags
        self.arrays["skipped"] = self.arrays["skipped"] + (1 - keep.astype(mx.int32))
        return [_where(keep, n, p) for n, p in zip(new, parameters)]

    @property
    def skipped_steps(self) -> int:
        """Steps skipped so far (reads one scalar: a sync)."""
        return int(self.arrays["skipped"].item())  # type: ignore[arg-type]  # an int counter; mlx types item() for any dtype

    def nonfinite_indices(self) -> tuple[int, ...]:
        """Positions of the groups that were not finite at the last step."""
        return tuple(i for i, ok in enumerate(self.arrays["finite"].tolist()) if not ok)  # type: ignore[arg-type]  # a 1-d array: tolist() is a list
