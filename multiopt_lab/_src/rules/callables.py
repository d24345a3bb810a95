"""Plain Python callables ``(path, array) -> bool`` wrapped as rules.

Failures inside the callable, and results that are not bools, are reported
as :class:`RuleError` naming the parameter they happened on.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import numpy as np

from multiopt_lab._src.rules.errors import RuleError
from multiopt_lab._src.rules.text import operand_text

__all__ = ["CallableRule"]


class CallableRule:
    """A Python callable used as a rule.

    Args:
        function: ``(path, array) -> bool``.
        structural (bool, optional): True if the result depends only on the
            path, shape and dtype (never on values). None reads a
            ``structural`` attribute on the function, defaulting to False.
    """

    def __init__(self, function: Callable[[str, Any], Any], structural: bool | None = None):
        self.function = function
        if structural is None:
            structural = getattr(function, "structural", False) is True
        self.structural = bool(structural)

    def describe(self) -> str:
        """``<callable name>`` for messages and tables."""
        name = getattr(self.function, "__name__", None) or type(self.function).__name__
        return f"<callable {name}>"

    def call(self, path: str, array: Any, text: str | None = None) -> bool:
        """Call the function on one parameter; RuleError naming the path on failure."""
        try:
            result = self.function(path, array)
        except RuleError:
            raise
        except Exception as err:
            raise RuleError(
                f"{self.describe()} raised {type(err).__name__} on {path!r}: {err}",
                text, None, path,
            ) from err
        if isinstance(result, (bool, np.bool_)):
            return bool(result)
        raise RuleError(
            f"{self.describe()} returned {type(result).__name__} ({result!r:.60}) on {path!r}; "
            "expected True or False (wrap the result in bool(...))",
            text, None, path,
        )

    #: ``(left, right, word)`` of a rule made by :meth:`combine` or :meth:`negate`.
    operands: tuple | None = None

    def select(self, table, rows: np.ndarray, text: str | None = None) -> np.ndarray:
        """Call the function on each selected row of a ``ParameterTable``."""
        if self.operands is not None:
            left, right, word = self.operands
            result = np.asarray(left.select(table, rows), dtype=bool)
            if word == "not":
                return ~result
            open_rows = result if word == "and" else ~result
            if open_rows.any():
                result = result.copy()
                result[open_rows] = np.asarray(right.select(table, rows[open_rows]), dtype=bool)
            return result
        paths, arrays, call = table.paths, table.arrays, self.call
        return np.fromiter((call(paths[i], arrays[i], text) for i in rows.tolist()),
                           dtype=bool, count=len(rows))

    @classmethod
    def combine(cls, left, right, word: str) -> CallableRule:
        """``left and right`` / ``left or right`` of two Rules, one at least a callable.

        On a table each side is evaluated with its own ``select`` (a rule
        reading ``module`` then sees the model's modules), the right side only
        where the left one leaves the answer open, as ``and``/``or`` do.
        """
        if word == "and":
            def both(path, array):
                return left(path, array) and right(path, array)
        else:
            def both(path, array):
                return left(path, array) or right(path, array)
        both.__name__ = f"({_operand(left, word)} {word} {_operand(right, word)})"
        combined = cls(both, not (left.depends_on_values or right.depends_on_values))
        combined.operands = (left, right, word)
        return combined

    @classmethod
    def negate(cls, operand) -> CallableRule:
        """``not operand`` for a callable Rule."""
        def negated(path, array):
            return not operand(path, array)

        negated.__name__ = f"not {operand.describe()}"
        rule = cls(negated, not operand.depends_on_values)
        rule.operands = (operand, None, "not")
        return rule


def _operand(rule, word: str) -> str:
    """How a rule reads as an operand of ``word`` in a combined rule's name."""
    text = getattr(rule, "text", None)
    return operand_text(text, word) if text is not None else rule.describe()
