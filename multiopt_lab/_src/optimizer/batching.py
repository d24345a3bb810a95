"""One ``apply_single`` call for many small parameters of an elementwise optimizer.

On a CPU each MLX kernel costs microseconds whatever its size, so an AdamW
step over hundreds of tiny arrays (norms, biases) is mostly launch overhead.
For optimizers whose update is purely elementwise (every operation acts on
each element on its own, with scalar hyperparameters), running the
optimizer's *own* ``apply_single`` once on the concatenation of a bucket of
parameters gives, element for element, the very same floating-point
operations, hence the same bits; the results are split back into views.
Parameters larger than :data:`MAX_BATCHED_SIZE` elements stay one call each:
for them the copies would cost more than the launches they save.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any
from collections.abc import Sequence

import mlx.core as mx
import mlx.optimizers as optim

__all__ = ["MAX_BATCHED_SIZE", "Bucket", "is_elementwise", "make_buckets"]

#: Largest parameter (in elements) worth concatenating with others.
MAX_BATCHED_SIZE = 8192

# Exact classes only: a subclass may override apply_single with anything.
_ELEMENTWISE = frozenset({optim.SGD, optim.RMSprop, optim.Adagrad, optim.AdaDelta, optim.Adam,
                          optim.AdamW, optim.Adamax, optim.Lion})


def is_elementwise(optimizer: Any) -> bool:
    """True for MLX optimizers whose ``apply_single`` acts element by element.
    """
    return type(optimizer) in _ELEMENTWISE


class Bucket:
    """Leaves of one group updated together by one ``apply_single`` call.

    Attributes:
        indices (list[int]): Leaf indices (flatten order).
        shapes (list[tuple]): Their shapes.
        sizes (tuple[int, ...]): Their sizes, in elements.
        offsets (list[int]): Split points in the concatenation.
        states (list[dict]): Their per-parameter state dicts.
        keys (tuple[str, ...]): The state entries (all shaped like the parameter).
    """

    __slots__ = ("indices", "shapes", "sizes", "offsets", "states", "keys")

    def __init__(self, indices: list[int], shapes: list[tuple], states: list[dict], keys: tuple):
        self.indices, self.shapes, self.states, self.keys = indices, shapes, states, keys
        self.sizes = tuple(_size(s) for s in shapes)
        self.offsets = list(accumulate(self.sizes))[:-1]

    def apply(self, apply_single, grads: Sequence[Any], params: Sequence[Any],
              new: list) -> tuple[Any, Any, Any]:
        """Run ``apply_single`` on the concatenation; write results and state back.

        Returns the flat ``(gradients, old parameters, new parameters)``
        (the metrics reuse them).
        """
        idx = self.indices
        flat_state = {k: _concat([s[k] for s in self.states]) for k in self.keys}
        flat_grads, flat_params = _concat([grads[i] for i in idx]), _concat([params[i] for i in idx])
        updated = apply_single(flat_grads, flat_params, flat_state)
        for i, piece, shape in zip(idx, mx.split(updated, self.offsets), self.shapes):
            new[i] = piece.reshape(shape)
        for key in self.keys:
            value = flat_state[key]
            for state, piece, shape in zip(self.states, mx.split(value, self.offsets), self.shapes):
                state[key] = piece.reshape(shape)
        return flat_grads, flat_params, updated


def _concat(arrays: Sequence[Any]) -> Any:
    return mx.concatenate([a.reshape(-1) for a in arrays])


def _size(shape: tuple) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def make_buckets(optimizer: Any, indices: Sequence[int], grads: Sequence[Any],
                 params: Sequence[Any], states: Sequence[dict],
                 max_size: int = MAX_BATCHED_SIZE) -> tuple[list[Bucket], list[int]]:
    """Split a group's leaves into buckets and leaves that stay one call each.

    A bucket holds small leaves with the same gradient, parameter and state
    dtypes and the same state keys, every state entry shaped like its
    parameter. Returns ``(buckets, single_positions)``, positions being
    indices into ``indices``.
    """
    if not is_elementwise(optimizer):
        return [], list(range(len(indices)))
    groups: dict[tuple, list[int]] = {}
    single: list[int] = []
    for position, (i, state) in enumerate(zip(indices, states)):
        g, p = grads[i], params[i]
        key = _bucket_key(g, p, state, max_size)
        if key is None:
            single.append(position)
        else:
            groups.setdefault(key, []).append(position)
    buckets = []
    for key, positions in groups.items():
        if len(positions) < 2:
            single.extend(positions)
            continue
        buckets.append(Bucket([indices[k] for k in positions], [params[indices[k]].shape
                                                               for k in positions],
                              [states[k] for k in positions], key[2]))
    single.sort()
    return buckets, single


def _bucket_key(g: Any, p: Any, state: dict, max_size: int) -> tuple | None:
    if g.size > max_size or g.shape != p.shape:
        return None
    keys = tuple(sorted(state))
    dtypes = []
    for k in keys:
        value = state[k]
        if not isinstance(value, mx.array) or value.shape != p.shape:
            return None
        dtypes.append(value.dtype)
    return (g.dtype, p.dtype, keys, tuple(dtypes))
