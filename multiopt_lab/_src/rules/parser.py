"""Rule text -> checked, compiled node tree. Never ``eval``: a whitelist over ``ast``.

The limits on size and nesting live in :mod:`multiopt_lab._src.rules.text`
and are checked before ``ast.parse`` runs; ``regex()`` patterns are
compiled with RE2 (linear-time matching) in :mod:`multiopt_lab._src.rules.matching`.
"""

from __future__ import annotations

import ast
import difflib
import warnings
from typing import Any

from multiopt_lab._src.rules.checks import compile_call, fold, literal_kind, type_compare
from multiopt_lab._src.rules.errors import RuleError
from multiopt_lab._src.rules.text import (BINOPS, FEATURE_KINDS, FUNCTIONS, MAX_DEPTH, MAX_LENGTH,
                                         MAX_LITERAL, MODULE_NAMES, NAMES_HELP, REFUSED, UNQUOTED_PATTERN,
                                         kind_name, scan_tokens)
from multiopt_lab._src.rules.logic import And, Not, Or
from multiopt_lab._src.rules.nodes import FEATURES, Constant, Feature, Negate, Node, Subscript, TupleOf

__all__ = ["compile_rule"]


def compile_rule(text: object) -> Node:
    """Parse, check and compile a rule expression; RuleError with a caret otherwise.

    Args:
        text (str): The rule, e.g. ``'ndim == 2 and not glob("*embed*")'``.
    """
    if not isinstance(text, str):
        raise TypeError(f"a rule expression must be a str, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise RuleError(f"rule is {len(text)} characters long; at most {MAX_LENGTH} are "
                        f"allowed (it starts {text[:40]!r})")
    if "\x00" in text:
        raise RuleError("a rule cannot contain a null character", text, text.index("\x00"))
    # Same-length substitutions keep every column an offset into ``text``.
    flat = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    body = flat.lstrip()
    lead = len(flat) - len(body)
    if not body.strip():
        raise RuleError("empty rule; expected a condition such as: ndim == 2", text, None)
    scan_tokens(text, body, lead)
    try:
        with warnings.catch_warnings():
            # "\d" in a non-raw string is what users mean in regex("\d+"): keep it, quietly.
            warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
            tree = ast.parse(body, mode="eval")
    except SyntaxError as err:
        unquoted = UNQUOTED_PATTERN.search(body)
        if unquoted:
            raise RuleError(f"expected a string, e.g. {unquoted.group(1)}(\"*embed*\")", text,
                            lead + unquoted.end()) from None
        if not err.offset:  # CPython puts errors at the end of the input at offset 0
            raise RuleError("not a valid rule: it ends too early; expected an operand after "
                            "the last operator", text, len(text.rstrip())) from None
        column = min(lead + err.offset - 1, len(text) - 1)
        hint = "; to compare, write ==" if text[column] == "=" else ""
        raise RuleError(f"not a valid rule: {err.msg}{hint}", text, column) from None
    except (RecursionError, MemoryError, ValueError) as err:
        raise RuleError(f"not a valid rule: {err}", text, None) from None
    compiler = _Compiler(text, body, lead)
    compiler.check_depth(tree.body)
    root = compiler.compile(tree.body)
    root.canonical = ast.dump(tree.body)
    root.module_literals = frozenset(compiler.module_literals)
    root.module_column = compiler.module_column
    if root.kind != "bool":
        raise RuleError("a rule must be a condition (True or False), found "
                        f"{kind_name(root.kind)} value; compare it, e.g. ndim == 2", text, lead)
    return root


class _Compiler:
    def __init__(self, text: str, body: str, lead: int):
        self.text, self.lead = text, lead
        self.encoded = body.encode("utf-8")
        #: Class names compared with ``module``/``modules`` or given to ``within``.
        self.module_literals: set[str] = set()
        #: Column of the first ``module``/``modules``/``within``, for "pass the model" errors.
        self.module_column: int | None = None

    def column(self, node: Any) -> int:  # an ast node or anything with a col_offset
        # ast offsets count UTF-8 bytes; carets count characters.
        prefix = self.encoded[: node.col_offset].decode("utf-8", "ignore")
        return self.lead + len(prefix)

    def error(self, node: ast.AST, message: str) -> RuleError:
        return RuleError(message, self.text, self.column(node))

    def check_depth(self, root: ast.AST) -> None:
        stack = [(root, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise self.error(node, f"rule nested more than {MAX_DEPTH} levels deep")
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))

    def compile(self, node: ast.AST) -> Node:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            message = REFUSED.get(type(node).__name__,
                                  f"{type(node).__name__} is not part of the rule language")
            raise self.error(node, message)
        return fold(method(node), self)

    def _Constant(self, node: ast.Constant) -> Node:
        kind = literal_kind(node.value)
        if kind is None:
            raise self.error(node, f"{node.value!r} is not allowed; the literals are strings, "
                                   "ints, floats, True, False and tuples of them")
        if kind == "str" and isinstance(node.value, str) and len(node.value) > MAX_LITERAL:
            raise self.error(node, f"string literal longer than {MAX_LITERAL} characters")
        return Constant(node.value, kind, self.column(node))

    def _Name(self, node: ast.Name) -> Node:
        if node.id in FEATURE_KINDS:
            feature = Feature(node.id, FEATURE_KINDS[node.id], self.column(node))
            if node.id == "modules":
                feature.item_kinds = ("str",)
            if node.id in MODULE_NAMES and self.module_column is None:
                self.module_column = feature.column_offset
            return feature
        if node.id in FUNCTIONS:
            example = "TransformerBlock" if node.id == "within" else "*.weight"
            raise self.error(node, f"{node.id} is a function: call it, e.g. {node.id}(\"{example}\")")
        close = difflib.get_close_matches(node.id, FEATURES + FUNCTIONS, n=1, cutoff=0.6)
        if close:
            hint = f"did you mean {close[0]!r}?"
        elif node.id[:1].isupper():
            hint = (f"a module's class name is a string: write module == \"{node.id}\" or "
                    f"within(\"{node.id}\")")
        else:
            hint = NAMES_HELP
        raise self.error(node, f"unknown name {node.id!r}; {hint}")

    def _Tuple(self, node: ast.Tuple) -> Node:
        items = [self.compile(item) for item in node.elts]
        result = TupleOf(items, self.column(node))
        result.item_kinds = tuple(item.kind for item in items)
        return result

    def _UnaryOp(self, node: ast.UnaryOp) -> Node:
        operand = self.compile(node.operand)
        op = type(node.op).__name__
        if op == "Not":
            self.expect_bool(node.operand, operand, "'not'")
            return Not(operand, self.column(node))
        if op in ("USub", "UAdd"):
            if operand.kind not in ("int", "float"):
                raise self.error(node.operand, "expected a number after the sign, found "
                                               f"{kind_name(operand.kind)}")
            return operand if op == "UAdd" else Negate(operand, self.column(node))
        raise self.error(node, "'~' is not allowed; write 'not'")

    def _BinOp(self, node: ast.BinOp) -> Node:
        symbol = BINOPS.get(type(node.op).__name__, "this operator")
        raise self.error(node, f"{symbol} is not part of the rule language; compare features "
                               "directly, e.g. size > 1000000")

    def _BoolOp(self, node: ast.BoolOp) -> Node:
        word = "'and'" if isinstance(node.op, ast.And) else "'or'"
        operands = [self.compile(value) for value in node.values]
        for value, operand in zip(node.values, operands):
            self.expect_bool(value, operand, word)
        kind = And if isinstance(node.op, ast.And) else Or
        return kind(operands, self.column(node))

    def expect_bool(self, source: ast.AST, node: Node, where: str) -> None:
        if node.kind != "bool":
            raise self.error(source, f"{where} needs conditions (True or False), found "
                                     f"{kind_name(node.kind)} value; compare it, e.g. ndim == 2")

    def _Compare(self, node: ast.Compare) -> Node:
        operands = [self.compile(node.left)] + [self.compile(c) for c in node.comparators]
        sources = [node.left] + list(node.comparators)
        pairs = []
        for i, op in enumerate(node.ops):
            pairs.append(type_compare(self, op, operands[i], operands[i + 1], sources[i + 1]))
        return pairs[0] if len(pairs) == 1 else And(pairs, self.column(node))

    def _Call(self, node: ast.Call) -> Node:
        return compile_call(self, node, FUNCTIONS, MAX_LITERAL)

    def _Subscript(self, node: ast.Subscript) -> Node:
        value = self.compile(node.value)
        if value.kind not in ("str", "shape", "tuple"):
            raise self.error(node.value, f"only shape, strings and tuples can be indexed, "
                                         f"found {kind_name(value.kind)}")
        if isinstance(node.slice, ast.Slice):
            parts = tuple(None if p is None else self.index(p)
                          for p in (node.slice.lower, node.slice.upper, node.slice.step))
            return Subscript(value, parts, value.kind, self.column(node))
        index = self.index(node.slice)
        return Subscript(value, index, self.item_kind(node, value, index), self.column(node))

    def index(self, source: ast.AST) -> Node:
        index = self.compile(source)
        if index.kind != "int":
            raise self.error(source, f"expected an int index, found {kind_name(index.kind)}")
        return index

    def item_kind(self, node: ast.Subscript, value: Node, index: Node) -> str:
        if value.kind == "str":
            return "str"
        if value.kind == "shape":
            return "int"
        kinds = getattr(value, "item_kinds", None) or ()
        if isinstance(index, Constant) and -len(kinds) <= index.value < len(kinds):
            return kinds[index.value]
        if kinds and len(set(kinds)) == 1:
            return kinds[0]
        raise self.error(node.slice, "index a tuple of mixed types with a constant in range")
