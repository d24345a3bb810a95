"""Compiled rule expressions: a small tree of nodes, evaluated without ``eval``.

Each node evaluates two ways:

* ``row(features)``: one parameter, ``features`` being the tuple
  ``(path, name, ndim, shape, size, dtype, module, modules)``; Python
  semantics, short-circuit included. ``Rule.__call__`` (the MLX filter
  contract) uses it.
* ``column(table, rows)`` / ``mask(table, rows)``: many parameters at once.
  A sub-expression that reads neither ``path`` nor ``name`` runs once per
  distinct (shape, dtype), or per distinct (shape, dtype, enclosing module
  classes) when it reads ``module``/``modules``; ``and``/``or``
  (:mod:`multiopt_lab._src.rules.logic`) run their right
  operand only on the rows the left one leaves open, so
  ``ndim == 2 and shape[1] > 8`` never indexes a 1-D shape, exactly as the
  row form would.
"""

from __future__ import annotations

import operator
from itertools import repeat
from typing import Any
from collections.abc import Callable

import numpy as np

from multiopt_lab._src.rules.joined import contains_rows

__all__ = ["FEATURES", "Node", "Constant", "Feature", "Compare", "Subscript",
           "Negate", "TupleOf", "EvaluationFailure"]

#: Feature names in the order of a row tuple.
FEATURES = ("path", "name", "ndim", "shape", "size", "dtype", "module", "modules")
_COLUMNS = ("paths", "names", "ndims", "shapes", "sizes", "dtypes", "module_names", "module_chains")
_PER_PATH = frozenset({"path", "name"})
_PER_MODULE = frozenset({"module", "modules"})


class EvaluationFailure(Exception):
    """A node could not be evaluated on one parameter (caught and re-raised as RuleError)."""

    def __init__(self, column: int, message: str):
        super().__init__(message)
        self.column = column
        self.message = message


class Node:
    """Base of compiled nodes: ``kind`` is the static type, ``names`` what it reads."""

    kind: str = "bool"
    names: frozenset = frozenset()
    column_offset: int = 0
    # Set by the parser: on the root (canonical, module_literals, module_column) and on
    # tuple-valued nodes (item_kinds). Declared for the type checker; no default.
    canonical: str
    module_literals: frozenset[str]
    module_column: int | None
    item_kinds: tuple[str | None, ...]

    @property
    def per_structure(self) -> bool:
        """True when the value depends only on shape and dtype."""
        return not (self.names & _PER_PATH)

    def row(self, features: tuple) -> Any:
        raise NotImplementedError

    def column(self, table, rows: np.ndarray) -> list:
        if self.per_structure:
            return self._by_structure(table, rows).tolist()
        row, table_rows = self.row, table.rows
        return [row(table_rows[i]) for i in rows.tolist()]

    def mask(self, table, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros(0, dtype=bool)
        if self.per_structure:
            values, ids = self._per_structure_values(table, rows)
            return values.astype(bool)[ids]  # truth of each distinct value, then spread
        return np.fromiter(self.column(table, rows), dtype=bool, count=len(rows))

    def _by_structure(self, table, rows: np.ndarray) -> np.ndarray:
        values, ids = self._per_structure_values(table, rows)
        return values[ids]

    def _per_structure_values(self, table, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The value for each distinct structure among ``rows``, and each row's structure."""
        if self.names & _PER_MODULE:
            ids, row_of, count = table.kind_ids[rows], table.kind_row, table.kind_count
        else:
            ids, row_of, count = table.structure_ids[rows], table.structure_row, len(table.structures)
        present = np.zeros(count, dtype=bool)
        present[ids] = True
        values = np.empty(count, dtype=object)
        for sid in np.flatnonzero(present).tolist():
            values[sid] = self.row(row_of(sid))
        return values, ids


class Constant(Node):
    def __init__(self, value: Any, kind: str, column_offset: int = 0):
        self.value, self.kind, self.column_offset = value, kind, column_offset

    def row(self, features: tuple) -> Any:
        return self.value

    def column(self, table, rows: np.ndarray) -> list:
        return [self.value] * len(rows)

    def mask(self, table, rows: np.ndarray) -> np.ndarray:
        return np.full(len(rows), bool(self.value))


class Feature(Node):
    def __init__(self, name: str, kind: str, column_offset: int):
        self.name, self.kind, self.column_offset = name, kind, column_offset
        self.names = frozenset({name})
        self.position = FEATURES.index(name)

    def row(self, features: tuple) -> Any:
        return features[self.position]

    def column(self, table, rows: np.ndarray) -> list:
        values = getattr(table, _COLUMNS[self.position])
        if len(rows) == len(values):
            return list(values)
        return [values[i] for i in rows.tolist()]


_ROW_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}
# Comprehensions beat map(lambda) by about 2x; one per operator.
_COLUMN_OPS: dict[str, Callable[[list, list], list]] = {
    "==": lambda L, R: [a == b for a, b in zip(L, R)],
    "!=": lambda L, R: [a != b for a, b in zip(L, R)],
    "<": lambda L, R: [a < b for a, b in zip(L, R)],
    "<=": lambda L, R: [a <= b for a, b in zip(L, R)],
    ">": lambda L, R: [a > b for a, b in zip(L, R)],
    ">=": lambda L, R: [a >= b for a, b in zip(L, R)],
    "in": lambda L, R: [a in b for a, b in zip(L, R)],
    "not in": lambda L, R: [a not in b for a, b in zip(L, R)],
}


def _operand(node: Node, table, rows: np.ndarray):
    return repeat(node.value) if isinstance(node, Constant) else node.column(table, rows)


class Compare(Node):
    def __init__(self, left: Node, op: str, right: Node, column_offset: int):
        self.left, self.op, self.right = left, op, right
        self.names = left.names | right.names
        self.column_offset = column_offset
        self._row_op = _ROW_OPS[op]

    def row(self, features: tuple) -> bool:
        right = self.right
        value = right.value if type(right) is Constant else right.row(features)
        return self._row_op(self.left.row(features), value)

    def column(self, table, rows: np.ndarray) -> list:
        if self.per_structure:
            return super().column(table, rows)
        found = self._scan(table, rows)
        if found is not None:
            return found.tolist()
        return _COLUMN_OPS[self.op](_operand(self.left, table, rows), _operand(self.right, table, rows))

    def mask(self, table, rows: np.ndarray) -> np.ndarray:
        found = self._scan(table, rows) if len(rows) and not self.per_structure else None
        return found if found is not None else super().mask(table, rows)

    def _scan(self, table, rows: np.ndarray) -> np.ndarray | None:
        """``"x" in path`` / ``"x" not in path`` in one scan of the joined paths, or None."""
        if self.op not in ("in", "not in") or not (
                type(self.left) is Constant and isinstance(self.left.value, str)
                and isinstance(self.right, Feature) and self.right.name == "path"):
            return None
        found = contains_rows(table, rows, self.left.value)
        if found is None or self.op == "in":
            return found
        return ~found


class Subscript(Node):
    def __init__(self, value: Node, index: Node | tuple, kind: str, column_offset: int):
        # ``index`` is a node, or a tuple of three nodes/None for a slice.
        self.value, self.index, self.kind = value, index, kind
        self.column_offset = column_offset
        parts = index if isinstance(index, tuple) else (index,)
        self.names = value.names.union(*(p.names for p in parts if p is not None))

    def _key(self, features: tuple) -> Any:
        if isinstance(self.index, tuple):
            return slice(*(None if p is None else p.row(features) for p in self.index))
        return self.index.row(features)

    def row(self, features: tuple) -> Any:
        value = self.value.row(features)
        key = self._key(features)
        try:
            return value[key]
        except IndexError:
            message = f"index {key} is out of range for {value!r} (length {len(value)})"
            if isinstance(self.value, Feature) and self.value.name == "shape":
                needed = key + 1 if key >= 0 else -key
                message += f"; guard it: ndim >= {needed} and ..."
            raise EvaluationFailure(self.column_offset, message) from None


class Negate(Node):
    def __init__(self, operand: Node, column_offset: int):
        self.operand, self.kind, self.names = operand, operand.kind, operand.names
        self.column_offset = column_offset

    def row(self, features: tuple) -> Any:
        return -self.operand.row(features)


class TupleOf(Node):
    kind = "tuple"

    def __init__(self, items: list[Node], column_offset: int):
        self.items, self.column_offset = items, column_offset
        self.names = frozenset().union(*(i.names for i in items))

    def row(self, features: tuple) -> tuple:
        return tuple(item.row(features) for item in self.items)
