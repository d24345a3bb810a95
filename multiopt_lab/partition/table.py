"""A flat, columnar view of a parameter tree: what rules are evaluated on.

Example:
    >>> import mlx.core as mx
    >>> table = ParameterTable.from_tree({"w": mx.zeros((2, 3)), "b": [mx.zeros((3,))]})
    >>> table.paths, table.shapes, table.dtypes
    (('w', 'b.0'), ((2, 3), (3,)), ('float32', 'float32'))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from functools import cached_property
from typing import Any

import mlx.core as mx
import numpy as np

from multiopt_lab.partition.flat_tree import StructureKey, dtype_name, flatten_tree

__all__ = ["ParameterTable", "StructureKey", "dtype_name", "flatten_tree"]


class ParameterTable:
    """The flattened parameters, one column per feature a rule can read.

    Build it with :meth:`from_tree`. Rows keep ``tree_flatten`` order.

    Attributes:
        paths (tuple[str, ...]): Dotted ``tree_flatten`` keys.
        names (tuple[str, ...]): Last component of each path.
        shapes (tuple[tuple[int, ...], ...]): Shapes as tuples.
        ndims, sizes (tuple[int, ...]): Number of dimensions, number of values.
        dtypes (tuple[str, ...]): Dtype names such as ``"float32"``.
        arrays (tuple): The arrays themselves (for Python callables).
        structure_ids (numpy.ndarray): Row -> index into ``structures``.
        structures (tuple): Distinct ``(shape, dtype)`` pairs, first seen first.
        key (StructureKey): Hashable fingerprint of paths, shapes and dtypes.

    Example:
        >>> import mlx.core as mx
        >>> len(ParameterTable.from_tree({"a": mx.zeros((4,)), "b": mx.zeros((4,))}).structures)
        1
    """

    def __init__(self, items: Iterable[tuple[str, Any]]):
        """Build from ``(path, array)`` pairs; prefer :meth:`from_tree`."""
        items = list(items)
        paths = [p for p, _ in items]
        arrays = [a for _, a in items]
        try:
            shapes = [a.shape if type(a.shape) is tuple else tuple(a.shape) for a in arrays]
            dtype_objects = [a.dtype for a in arrays]
        except AttributeError:
            bad = next(i for i, a in enumerate(arrays)
                       if not (hasattr(a, "shape") and hasattr(a, "dtype")))
            raise TypeError(
                f"parameter {paths[bad]!r} is a {type(arrays[bad]).__name__}, expected an "
                "array with a shape and a dtype; pass the model's parameters "
                "(e.g. model.trainable_parameters())"
            ) from None
        ids: dict[tuple, int] = {}
        try:
            row_ids = [ids.setdefault(s, len(ids)) for s in zip(shapes, dtype_objects)]
        except TypeError:  # unhashable dtype-likes: group by name instead
            ids.clear()
            dtype_objects = [dtype_name(d) for d in dtype_objects]
            row_ids = [ids.setdefault(s, len(ids)) for s in zip(shapes, dtype_objects)]
        self.paths: tuple[str, ...] = tuple(paths)
        self.shapes: tuple[tuple[int, ...], ...] = tuple(shapes)
        self.arrays: tuple[Any, ...] = tuple(arrays)
        self.structure_ids = np.array(row_ids, dtype=np.intp)
        self.structures: tuple[tuple[tuple[int, ...], str], ...] = tuple(
            (shape, dtype_name(dtype)) for shape, dtype in ids)
        self._row_ids = row_ids
        # Paths (strings cache their hash) + per-row structure ids + the distinct
        # structures determine every (path, shape, dtype) and hash ~5x faster.
        self.key = StructureKey((self.paths, tuple(row_ids), self.structures))
        self._rows: list[tuple] | None = None
        self._index: dict[str, int] | None = None

    # Columns most rules never read are built on first use.
    @cached_property
    def names(self) -> tuple[str, ...]:
        """Last component of each path."""
        return tuple([p.rpartition(".")[2] for p in self.paths])

    @cached_property
    def dtypes(self) -> tuple[str, ...]:
        """Dtype names such as ``"float32"``."""
        names = [dtype for _, dtype in self.structures]
        return tuple([names[i] for i in self._row_ids])

    @cached_property
    def ndims(self) -> tuple[int, ...]:
        """Number of dimensions of each parameter."""
        return tuple(map(len, self.shapes))

    @cached_property
    def sizes(self) -> tuple[int, ...]:
        """Number of values of each parameter."""
        return tuple(map(math.prod, self.shapes))

    @classmethod
    def from_tree(cls, parameters: Any) -> "ParameterTable":
        """Flatten a parameter tree (or an ``nn.Module``'s trainable parameters).

        Args:
            parameters: A nested dict/list of arrays, an ``nn.Module`` (its
                ``trainable_parameters()`` are used: what an optimizer
                sees), or an existing ``ParameterTable`` (returned as is).

        Example:
            >>> import mlx.nn as nn
            >>> ParameterTable.from_tree(nn.Linear(2, 3)).paths
            ('weight', 'bias')
        """
        if isinstance(parameters, ParameterTable):
            return parameters
        trainable = getattr(parameters, "trainable_parameters", None)
        if callable(trainable):
            parameters = trainable()
        return cls(flatten_tree(parameters))

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (
            f"ParameterTable({len(self)} parameters, "
            f"{len(self.structures)} distinct shape/dtype pairs)"
        )

    def without_values(self) -> "ParameterTable":
        """The same table, its MLX arrays swapped for unevaluated zeros of their shape and dtype.

        For a table kept long after its rules ran (an optimizer's last
        assignment): the real arrays would keep that step's gradients, one
        copy of the model, alive. The zeros are lazy, so they hold no memory;
        a Python rule that reads values sees zeros.

        Example:
            >>> import mlx.core as mx
            >>> kept = ParameterTable.from_tree({"w": mx.ones((2, 3))}).without_values()
            >>> kept.shapes, kept.arrays[0].shape, kept.arrays[0].sum().item()
            (((2, 3),), (2, 3), 0.0)
        """
        kept = copy.copy(self)
        kept.arrays = tuple(mx.zeros(a.shape, a.dtype) if isinstance(a, mx.array) else a
                            for a in self.arrays)
        return kept

    def index(self, path: str) -> int:
        """Row number of ``path``; KeyError naming close paths when absent.

        Example:
            >>> import mlx.core as mx
            >>> ParameterTable.from_tree({"w": mx.zeros((1,))}).index("w")
            0
        """
        if self._index is None:
            self._index = {p: i for i, p in enumerate(self.paths)}
        try:
            return self._index[path]
        except KeyError:
            raise KeyError(f"no parameter {path!r} in this table of {len(self)} parameters") from None

    @property
    def rows(self) -> list[tuple]:
        """Per-row feature tuples ``(path, name, ndim, shape, size, dtype)``."""
        if self._rows is None:
            self._rows = list(
                zip(self.paths, self.names, self.ndims, self.shapes, self.sizes, self.dtypes)
            )
        return self._rows

    def structure_row(self, structure_id: int) -> tuple:
        """Feature tuple of a distinct ``(shape, dtype)``, with no path or name."""
        shape, dtype = self.structures[structure_id]
        return (None, None, len(shape), shape, math.prod(shape), dtype)
