"""Boolean nodes of compiled rules: ``not``, ``and``, ``or``, evaluated over row subsets.

``and`` evaluates each operand only on the rows every earlier operand left
True (``or``: left False), so bulk evaluation keeps Python's short-circuit:
an operand never sees a row the per-parameter form would not show it.
"""

from __future__ import annotations

import numpy as np

from multiopt_lab._src.rules.nodes import Node

__all__ = ["Not", "And", "Or"]


class Not(Node):
    def __init__(self, operand: Node, column_offset: int):
        self.operand, self.names, self.column_offset = operand, operand.names, column_offset

    def row(self, features: tuple) -> bool:
        return not self.operand.row(features)

    def mask(self, table, rows: np.ndarray) -> np.ndarray:
        if self.per_structure:
            return super().mask(table, rows)
        return ~self.operand.mask(table, rows)

    def column(self, table, rows: np.ndarray) -> list:
        return self.mask(table, rows).tolist()


class And(Node):
    def __init__(self, operands: list[Node], column_offset: int):
        self.operands, self.column_offset = operands, column_offset
        self.names = frozenset().union(*(o.names for o in operands))

    def row(self, features: tuple) -> bool:
        for operand in self.operands:
            if not operand.row(features):
                return False
        return True

    def mask(self, table, rows: np.ndarray) -> np.ndarray:
        if self.per_structure:
            return super().mask(table, rows)
        result = np.ones(len(rows), dtype=bool)
        for operand in self.operands:
            still_open = np.flatnonzero(result)
            if len(still_open) == 0:
                break
            result[still_open] = operand.mask(table, rows[still_open])
        return result

    def column(self, table, rows: np.ndarray) -> list:
        return self.mask(table, rows).tolist()


class Or(Node):
    def __init__(self, operands: list[Node], column_offset: int):
        self.operands, self.column_offset = operands, column_offset
        self.names = frozenset().union(*(o.names for o in operands))

    def row(self, features: tuple) -> bool:
        for operand in self.operands:
            if operand.row(features):
                return True
        return False

    def mask(self, table, rows: np.ndarray) -> np.ndarray:
        if self.per_structure:
            return super().mask(table, rows)
        result = np.zeros(len(rows), dtype=bool)
        for operand in self.operands:
            still_open = np.flatnonzero(~result)
            if len(still_open) == 0:
                break
            result[still_open] = operand.mask(table, rows[still_open])
        return result

    def column(self, table, rows: np.ndarray) -> list:
        return self.mask(table, rows).tolist()
