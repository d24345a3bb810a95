"""Static checks of the rule language: types of comparisons, the two functions, folding.

Helpers of :mod:`multiopt_lab.rules.parser`; ``compiler`` below is its
``_Compiler`` (for ``compile``, ``column`` and ``error``).

Example:
    >>> literal_kind(3), literal_kind("a"), literal_kind(None)
    ('int', 'str', None)
"""

from __future__ import annotations

import ast
import fnmatch
import re
from typing import Any

from multiopt_lab.rules.errors import RuleError
from multiopt_lab.rules.matching import Match, compile_regex, literal_glob
from multiopt_lab.rules.nodes import Compare, Constant, EvaluationFailure, Node
from multiopt_lab.rules.text import kind_name

__all__ = ["literal_kind", "type_compare", "compile_call", "fold"]

_NUMBERS = ("int", "float")
_SEQUENCES = ("shape", "tuple")
_OPS = {"Eq": "==", "NotEq": "!=", "Lt": "<", "LtE": "<=", "Gt": ">", "GtE": ">=",
        "In": "in", "NotIn": "not in"}


def literal_kind(value: Any) -> str | None:
    """The rule-language type of a Python literal, or None if it is not one."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, tuple):
        return "tuple"
    return None


def _family(kind: str) -> str:
    return "number" if kind in _NUMBERS else "sequence" if kind in _SEQUENCES else kind


def type_compare(compiler, op: ast.cmpop, left: Node, right: Node, source: ast.AST) -> Node:
    """Check one comparison ``left op right`` and build its node."""
    name = type(op).__name__
    if name not in _OPS:
        raise compiler.error(source, "'is' is not part of the rule language; write == or !=")
    symbol = _OPS[name]
    found = kind_name(right.kind)
    if symbol in ("in", "not in"):
        if right.kind == "str" and left.kind != "str":
            raise compiler.error(source, f"'{symbol}' on a string needs a string on its left, "
                                         f"found {kind_name(left.kind)}")
        if right.kind not in ("str",) + _SEQUENCES:
            raise compiler.error(source, f"'{symbol}' needs a string or a tuple on its right, "
                                         f"found {found}")
        items = ("int",) if right.kind == "shape" else getattr(right, "item_kinds", None)
        if items and all(_family(k) != _family(left.kind) for k in items):
            raise compiler.error(source, f"this tuple holds no {_family(left.kind)}, so "
                                         f"'{symbol}' is always {symbol == 'not in'}")
    else:
        if _family(left.kind) != _family(right.kind):
            raise compiler.error(source, f"expected {kind_name(left.kind)} to compare with, "
                                         f"found {found}")
        if symbol not in ("==", "!=") and left.kind == "bool":
            raise compiler.error(source, f"conditions cannot be ordered with '{symbol}'")
    node = Compare(left, symbol, right, compiler.column(source))
    node.kind = "bool"
    return node


def compile_call(compiler, node: ast.Call, functions: tuple[str, ...], max_literal: int) -> Node:
    """Check ``glob("...")`` / ``regex("...")`` and compile its pattern once."""
    if isinstance(node.func, ast.Attribute):
        raise compiler.error(node.func, "attribute access is not part of the rule language; "
                                        "the functions are glob() and regex()")
    if not isinstance(node.func, ast.Name):
        raise compiler.error(node.func, f"only {' and '.join(f + '()' for f in functions)} "
                                        "can be called")
    name = node.func.id
    if name not in functions:
        raise compiler.error(node.func, f"unknown function {name!r}; the functions are "
                                        f"{' and '.join(f + '()' for f in functions)}")
    example = f'{name}("*.weight")' if name == "glob" else f'{name}(r"layers\\.\\d+\\.")'
    if node.keywords or len(node.args) != 1:
        raise compiler.error(node, f"{name}() takes exactly one pattern, e.g. {example}")
    arg = node.args[0]
    if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
        raise compiler.error(arg, f"expected a string, e.g. {example}")
    pattern = arg.value
    if len(pattern) > max_literal:
        raise compiler.error(arg, f"pattern longer than {max_literal} characters")
    if name == "glob":
        matcher = re.compile(fnmatch.translate(pattern), re.DOTALL).match
        return Match(matcher, compiler.column(node), literal_glob(pattern))
    return Match(compile_regex(compiler, arg, pattern), compiler.column(node))


def fold(node: Node, compiler) -> Node:
    """Replace a sub-expression that reads no feature by its value."""
    if isinstance(node, Constant) or node.names:
        return node
    try:
        value = node.row(())
    except EvaluationFailure as err:
        raise RuleError(err.message, compiler.text, err.column) from None
    except (TypeError, ValueError) as err:
        raise RuleError(f"cannot evaluate: {err}", compiler.text, node.column_offset) from None
    folded = Constant(value, node.kind, node.column_offset)
    if isinstance(value, tuple):
        folded.item_kinds = tuple(literal_kind(v) for v in value)
    return folded
