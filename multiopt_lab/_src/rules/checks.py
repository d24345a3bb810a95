"""Static checks of the rule language: types of comparisons, the two functions, folding.

Helpers of :mod:`multiopt_lab._src.rules.parser`; ``compiler`` below is its
``_Compiler`` (for ``compile``, ``column`` and ``error``).
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import re
from typing import Any

from multiopt_lab._src.rules.errors import RuleError
from multiopt_lab._src.rules.matching import Match, compile_regex, literal_glob
from multiopt_lab._src.rules.nodes import Compare, Constant, EvaluationFailure, Feature, Node
from multiopt_lab._src.rules.text import MODULE_NAMES, kind_name

__all__ = ["literal_kind", "type_compare", "compile_call", "fold", "function_list"]

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


def function_list(functions: tuple[str, ...]) -> str:
    """``glob(), regex() and within()``: the functions in words.
    """
    calls = [f + "()" for f in functions]
    return calls[0] if len(calls) == 1 else ", ".join(calls[:-1]) + " and " + calls[-1]


def _module_literals(node: Node, other: Node) -> tuple[str, ...]:
    """Class names a comparison of ``module``/``modules`` with a constant mentions."""
    if not (isinstance(node, Feature) and node.name in MODULE_NAMES and isinstance(other, Constant)):
        return ()
    values = other.value if isinstance(other.value, tuple) else (other.value,)
    return tuple(v for v in values if isinstance(v, str))


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
    compiler.module_literals.update(_module_literals(left, right) + _module_literals(right, left))
    node = Compare(left, symbol, right, compiler.column(source))
    node.kind = "bool"
    return node


_EXAMPLES = {"glob": 'glob("*.weight")', "regex": 'regex(r"layers\\.\\d+\\.")',
             "within": 'within("TransformerBlock")'}


def compile_call(compiler, node: ast.Call, functions: tuple[str, ...], max_literal: int) -> Node:
    """Check ``glob("...")`` / ``regex("...")`` / ``within("...")`` and compile it once."""
    if isinstance(node.func, ast.Attribute):
        raise compiler.error(node.func, "attribute access is not part of the rule language; "
                                        f"the functions are {function_list(functions)}")
    if not isinstance(node.func, ast.Name):
        raise compiler.error(node.func, f"only {function_list(functions)} can be called")
    name = node.func.id
    if name not in functions:
        close = difflib.get_close_matches(name, functions, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise compiler.error(node.func, f"unknown function {name!r}; {hint}the functions are "
                                        f"{function_list(functions)}")
    example = _EXAMPLES[name]
    what = "class name" if name == "within" else "pattern"
    if node.keywords or len(node.args) != 1:
        raise compiler.error(node, f"{name}() takes exactly one {what}, e.g. {example}")
    arg = node.args[0]
    if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
        raise compiler.error(arg, f"expected a string, e.g. {example}")
    pattern = arg.value
    if len(pattern) > max_literal:
        raise compiler.error(arg, f"{what} longer than {max_literal} characters")
    if name == "within":
        return _within(compiler, node, arg, pattern)
    if name == "glob":
        matcher = re.compile(fnmatch.translate(pattern), re.DOTALL).match
        return Match(matcher, compiler.column(node), literal_glob(pattern))
    return Match(compile_regex(compiler, arg, pattern), compiler.column(node))


def _within(compiler, node: ast.Call, arg: ast.Constant, class_name: str) -> Node:
    """``within("Block")``: ``"Block" in modules``, the classes from the model down to the holder."""
    if not class_name.isidentifier():
        raise compiler.error(arg, f"within() takes the class name of a module, such as "
                                  f"within(\"TransformerBlock\"), found {class_name!r}; to match "
                                  "paths use glob(), e.g. glob(\"layers.*\")")
    compiler.module_literals.add(class_name)
    column = compiler.column(node)
    if compiler.module_column is None:
        compiler.module_column = column
    modules = Feature("modules", "tuple", column)
    modules.item_kinds = ("str",)
    result = Compare(Constant(class_name, "str", column), "in", modules, column)
    result.kind = "bool"
    return result


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
