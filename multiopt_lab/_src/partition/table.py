"""A flat, columnar view of a parameter tree: what rules are evaluated on.

Built from a model, it also knows which modules hold each parameter (what
rules read as ``module`` and ``modules``); built from a parameter dict, it
does not, and a rule that reads them says to pass the model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from functools import cached_property
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from multiopt_lab._src.partition.structure_key import StructureKey
from multiopt_lab._src.rules.features import dtype_name
from multiopt_lab._src.trees.flatten import flatten_columns
from multiopt_lab._src.partition.modules import flatten_with_modules, module_chains
from multiopt_lab._src.rules.joined import JoinedPaths

__all__ = ["ParameterTable"]


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
        has_modules (bool): Whether the table knows the modules holding each
            parameter (it was built from an ``nn.Module``).
        module_names (tuple[str | None, ...]): Class name of the module holding
            each parameter (``"Linear"``); None without a model.
        module_chains (tuple[tuple[str, ...] | None, ...]): Class names from
            the model down to that module; None without a model.
        key (StructureKey): Hashable fingerprint of paths, shapes, dtypes
            (and module classes, when known).

    Example:
        >>> import mlx.core as mx
        >>> len(ParameterTable.from_tree({"a": mx.zeros((4,)), "b": mx.zeros((4,))}).structures)
        1
    """

    def __init__(self, items: Iterable[tuple[str, Any]] = (), model: Any = None, *,
                 _chains: tuple[list[int], list] | None = None,
                 _columns: tuple[list[str], list] | None = None):
        """Build from ``(path, array)`` pairs; prefer :meth:`from_tree`.

        ``model``: the ``nn.Module`` the paths belong to, to know the modules
        holding each parameter (ignored when it is not a module).
        """
        if _columns is not None:  # from_tree: the paths and the arrays, already apart
            paths, arrays = _columns
        else:
            items = list(items)
            paths = [p for p, _ in items]
            arrays = [a for _, a in items]
        try:
            shapes = [a.shape for a in arrays]
            if not all(type(s) is tuple for s in shapes):  # lists, or array-likes' own types
                shapes = [s if type(s) is tuple else tuple(s) for s in shapes]
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
        key: tuple = (self.paths, tuple(row_ids), self.structures)
        self.has_modules = isinstance(model, nn.Module) or _chains is not None
        self.chains: tuple[tuple[str, ...], ...] = ()
        self._chain_ids: list[int] = []
        if self.has_modules:
            chain_ids, chains = _chains if _chains is not None else module_chains(model, paths)
            self._chain_ids, self.chains = chain_ids, tuple(chains)
            key += (tuple(chain_ids), self.chains)
        self.key = StructureKey.shared(key)
        self._rows: list[tuple] | None = None
        self._index: dict[str, int] | None = None

    # Columns most rules never read are built on first use.
    @cached_property
    def names(self) -> tuple[str, ...]:
        """Last component of each path."""
        return tuple([p.rpartition(".")[2] for p in self.paths])

    @cached_property
    def distinct_rows(self) -> np.ndarray:
        """One row per distinct path, the last with that path, in order of first appearance
        (all rows, in order, unless a path repeats: ``{"a": {"b": w}, "a.b": v}``)."""
        if len(set(self.paths)) == len(self.paths):
            return np.arange(len(self.paths))
        last: dict[str, int] = {}
        for i, path in enumerate(self.paths):
            last[path] = i
        return np.array(list(last.values()), dtype=np.intp)

    @cached_property
    def joined_paths(self) -> JoinedPaths | None:
        """The paths joined by newlines, for ``regex()`` to scan many in one RE2 call
        (None when a path holds a newline)."""
        return JoinedPaths.of(self.paths)

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

    @cached_property
    def module_names(self) -> tuple[str | None, ...]:
        """Class name of the module holding each parameter; None without a model."""
        if not self.has_modules:
            return (None,) * len(self.paths)
        names = [chain[-1] for chain in self.chains]
        return tuple([names[i] for i in self._chain_ids])

    @cached_property
    def module_chains(self) -> tuple[tuple[str, ...] | None, ...]:
        """Class names from the model down to the holding module; None without a model."""
        if not self.has_modules:
            return (None,) * len(self.paths)
        chains = self.chains
        return tuple([chains[i] for i in self._chain_ids])

    @cached_property
    def _kinds(self) -> tuple[np.ndarray, list[tuple]]:
        # Distinct (shape, dtype, module chain) of the rows: a rule reading
        # module, modules and the shape runs once per kind.
        if not self.has_modules:
            return self.structure_ids, [(s, None) for s in range(len(self.structures))]
        index: dict[tuple, int] = {}
        ids = [index.setdefault(pair, len(index)) for pair in zip(self._row_ids, self._chain_ids)]
        return np.array(ids, dtype=np.intp), list(index)

    @property
    def kind_ids(self) -> np.ndarray:
        """Row -> index of its distinct (shape, dtype, module chain)."""
        return self._kinds[0]

    @property
    def kind_count(self) -> int:
        """Number of distinct (shape, dtype, module chain) among the rows."""
        return len(self._kinds[1])

    def kind_row(self, kind_id: int) -> tuple:
        """Feature tuple of a distinct (shape, dtype, module chain), with no path or name."""
        structure_id, chain_id = self._kinds[1][kind_id]
        row = self.structure_row(structure_id)
        if chain_id is None:
            return row
        chain = self.chains[chain_id]
        return row[:6] + (chain[-1], chain)

    @classmethod
    def from_tree(cls, parameters: Any, model: Any = None) -> ParameterTable:
        """Flatten a parameter tree (or an ``nn.Module``'s trainable parameters).

        Args:
            parameters: A nested dict/list of arrays, an ``nn.Module`` (its
                ``trainable_parameters()`` are used: what an optimizer
                sees, and the modules holding them are recorded), or an
                existing ``ParameterTable`` (returned as is).
            model (nn.Module, optional): The model a tree of parameters or
                gradients belongs to, to record the modules holding them.
                Default: ``parameters`` itself when it is a module.

        Example:
            >>> import mlx.nn as nn
            >>> ParameterTable.from_tree(nn.Linear(2, 3)).paths
            ('weight', 'bias')
        """
        if isinstance(parameters, ParameterTable):
            return parameters
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"ParameterTable.from_tree(): model must be an mlx.nn.Module (the "
                            f"model the parameters belong to) or None, found "
                            f"{type(model).__name__} {model!r:.60}")
        if isinstance(parameters, nn.Module):
            model, parameters = parameters, parameters.trainable_parameters()
        if isinstance(model, nn.Module):
            items, ids, chains = flatten_with_modules(parameters, model)
            return cls(items, _chains=(ids, chains))
        return cls(_columns=flatten_columns(parameters))

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        modules = ", with module classes" if self.has_modules else ""
        return (
            f"ParameterTable({len(self)} parameters, "
            f"{len(self.structures)} distinct shape/dtype pairs{modules})"
        )

    def without_values(self) -> ParameterTable:
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
        """Per-row feature tuples ``(path, name, ndim, shape, size, dtype, module, modules)``."""
        if self._rows is None:
            self._rows = list(
                zip(self.paths, self.names, self.ndims, self.shapes, self.sizes, self.dtypes,
                    self.module_names, self.module_chains)
            )
        return self._rows

    def structure_row(self, structure_id: int) -> tuple:
        """Feature tuple of a distinct ``(shape, dtype)``, with no path, name or module."""
        shape, dtype = self.structures[structure_id]
        return (None, None, len(shape), shape, math.prod(shape), dtype, None, None)
