"""``glob(pattern)`` and ``regex(pattern)``: the matcher node and its safety checks.

A regex whose repeat contains another repeat (``(a+)+``) can take time
exponential in the path's length, and one with many unbounded repeats
(``.*.*.*.*x``) a high power of it; such patterns, and backreferences, are
refused while parsing.

Example:
    >>> literal_glob("*embed*")
    ('contains', 'embed')
"""

from __future__ import annotations

import ast
import re
from typing import Any, Callable

import numpy as np

from multiopt_lab.rules.errors import RuleError
from multiopt_lab.rules.nodes import Node

try:  # Python 3.11+: re._parser; 3.10: sre_parse. Only used to refuse slow regexes.
    import re._parser as _sre_parse
except ImportError:  # pragma: no cover - depends on the Python version
    import sre_parse as _sre_parse  # type: ignore[no-redef]

__all__ = ["Match", "literal_glob", "compile_regex", "MAX_UNBOUNDED_REPEATS"]

#: Most unbounded repeats (``*``, ``+``, ``{n,}``) one regex may hold.
MAX_UNBOUNDED_REPEATS = 3
_REPEATS = (_sre_parse.MAX_REPEAT, _sre_parse.MIN_REPEAT)


class Match(Node):
    """``glob(pattern)`` or ``regex(pattern)`` on the path.

    ``literal_test`` is set for globs that reduce to a plain string test
    (``"*x*"``: ``"x" in path``; ``"x*"``, ``"*x"``, ``"x"``): several times
    faster than the regex over a column of paths.
    """

    names = frozenset({"path"})

    def __init__(self, matcher: Callable[[str], Any], column_offset: int,
                 literal_test: tuple[str, str] | None = None):
        self.matcher, self.column_offset = matcher, column_offset
        self.literal_test = literal_test

    def row(self, features: tuple) -> bool:
        if self.literal_test is not None:
            how, text = self.literal_test
            path = features[0]
            if how == "contains":
                return text in path
            if how == "prefix":
                return path.startswith(text)
            if how == "suffix":
                return path.endswith(text)
            return path == text
        return self.matcher(features[0]) is not None

    def column(self, table, rows: np.ndarray) -> list:
        paths = table.paths if len(rows) == len(table) else [table.paths[i] for i in rows.tolist()]
        if self.literal_test is not None:
            how, text = self.literal_test
            if how == "contains":
                return [text in p for p in paths]
            if how == "prefix":
                return [p.startswith(text) for p in paths]
            if how == "suffix":
                return [p.endswith(text) for p in paths]
            return [p == text for p in paths]
        match = self.matcher
        return [match(p) is not None for p in paths]


def literal_glob(pattern: str) -> tuple[str, str] | None:
    """The plain string test a glob amounts to, or None if it needs a regex.

    Example:
        >>> literal_glob("*embed*"), literal_glob("*.bias"), literal_glob("a*b")
        (('contains', 'embed'), ('suffix', '.bias'), None)
    """
    if any(c in pattern for c in "?["):
        return None
    inner = pattern.strip("*")
    if "*" in inner:
        return None
    starts, ends = pattern.startswith("*"), pattern.endswith("*")
    if starts and ends:
        return ("contains", inner)
    if ends:
        return ("prefix", inner)
    if starts:
        return ("suffix", inner)
    return ("equal", inner)


def compile_regex(compiler, arg: ast.Constant, pattern: str):
    """Compile a rule's regex; RuleError (caret inside the literal) when invalid or slow."""
    column = compiler.column(arg)
    try:
        parsed = _sre_parse.parse(pattern)
        compiled = re.compile(pattern)
    except re.error as err:
        # Points inside the literal; exact when the pattern holds no escapes.
        where = column + 1 + (err.pos or 0)
        raise RuleError(f"invalid regular expression: {err.msg}", compiler.text,
                        min(where, len(compiler.text) - 1)) from None
    except RecursionError:
        raise RuleError("regular expression nested too deeply", compiler.text, column) from None
    except OverflowError as err:  # a{99999999999}: re raises this, not re.error
        raise RuleError(f"invalid regular expression: {err}", compiler.text, column) from None
    if _nested_repeat(parsed, inside_repeat=False):
        raise RuleError("regular expression repeats a repeat (like (a+)+), which can take "
                        "exponential time; write it without the nested repeat", compiler.text, column)
    nodes = list(_walk(parsed))
    if any(op == _sre_parse.GROUPREF for op, _ in nodes):
        raise RuleError("backreferences are not allowed in a rule's regex", compiler.text, column)
    unbounded = sum(1 for op, arg in nodes if op in _REPEATS and arg[1] == _sre_parse.MAXREPEAT)
    if unbounded > MAX_UNBOUNDED_REPEATS:
        # Backtracking costs about len(path) ** (repeats + 1): 3 stays in milliseconds.
        raise RuleError(f"regular expression has {unbounded} unbounded repeats (*, +, {{n,}}); "
                        f"at most {MAX_UNBOUNDED_REPEATS} keep matching fast. Split it into "
                        "several regex() joined by 'and', or use glob()", compiler.text, column)
    return compiled.search


def _walk(items):
    for op, arg in items:
        yield op, arg
        for child in _children(op, arg):
            yield from _walk(child)


def _children(op, arg):
    if op in (_sre_parse.MAX_REPEAT, _sre_parse.MIN_REPEAT, _sre_parse.POSSESSIVE_REPEAT
              if hasattr(_sre_parse, "POSSESSIVE_REPEAT") else None):
        return [arg[2]]
    if op == _sre_parse.SUBPATTERN:
        return [arg[-1]]
    if op == _sre_parse.BRANCH:
        return list(arg[1])
    if op in (_sre_parse.ASSERT, _sre_parse.ASSERT_NOT):
        return [arg[1]]
    if op == _sre_parse.GROUPREF_EXISTS:
        return [a for a in arg[1:] if a is not None]
    if hasattr(_sre_parse, "ATOMIC_GROUP") and op == _sre_parse.ATOMIC_GROUP:
        return [arg]
    return []


def _nested_repeat(items, inside_repeat: bool) -> bool:
    for op, arg in items:
        is_repeat = op in (_sre_parse.MAX_REPEAT, _sre_parse.MIN_REPEAT)
        unbounded = is_repeat and arg[1] > 1
        if unbounded and inside_repeat:
            return True
        for child in _children(op, arg):
            if _nested_repeat(child, inside_repeat or unbounded):
                return True
    return False
