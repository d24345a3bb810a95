"""``glob(pattern)`` and ``regex(pattern)``: the matcher node and the regex engine.

``regex()`` runs on RE2 (the ``google-re2`` package), which matches in time
linear in the path's length whatever the pattern: Python's ``re``
backtracks, and ``(.|\\w)*z`` never finishes on a 39-character path. RE2
cannot express backreferences, lookaround, atomic groups or possessive
repeats; those are refused while parsing, the caret on the construct.

RE2 costs several times Python's ``re`` per call on short paths, so a
column of paths is matched in few calls: :class:`JoinedPaths` holds the paths
joined by newlines, and a pattern compiled in multiline mode with RE2's
``never_nl`` (no match ever spans a newline; ``^`` and ``$`` meet at each
path's ends) scans them, one call per path that matches (see
:func:`linear_search`'s ``many``). Patterns whose meaning depends on the
whole text (``\\A``, ``\\z``, ``\\C``, flags turned off) are matched path by path.
"""

from __future__ import annotations

import ast
import re
from bisect import bisect_left, bisect_right
from typing import Any
from collections.abc import Callable

import numpy as np
import re2

from multiopt_lab._src.rules.errors import RuleError
from multiopt_lab._src.rules.joined import JoinedPaths, contains_rows, scannable
from multiopt_lab._src.rules.nodes import Node

__all__ = ["Match", "JoinedPaths", "literal_glob", "compile_regex", "linear_search", "RegexUnsupported"]


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
        many = self._scan(table, rows)
        if many is not None:
            return many.tolist()
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

    def mask(self, table, rows: np.ndarray) -> np.ndarray:
        many = self._scan(table, rows) if len(rows) else None
        return many if many is not None else super().mask(table, rows)

    def _scan(self, table, rows: np.ndarray) -> np.ndarray | None:
        """Many paths in one scan of the joined paths, or None (then path by path)."""
        if self.literal_test is None:
            return _many(self.matcher, table, rows)
        how, text = self.literal_test
        return contains_rows(table, rows, text) if how == "contains" else None


def _many(matcher, table, rows: np.ndarray) -> np.ndarray | None:
    """The matcher over ``rows`` in few RE2 calls, or None where it must go path by path."""
    many = getattr(matcher, "many", None)
    if many is None:
        return None
    joined = scannable(table, rows)
    return None if joined is None else many(joined, rows)


def literal_glob(pattern: str) -> tuple[str, str] | None:
    """The plain string test a glob amounts to, or None if it needs a regex.
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


# RE2 would print every refused pattern to stderr (a notebook's red box, the
# CLI's output), and a rule only asks whether the path matches: no groups.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.never_capture = True
# For the scan over joined paths: no match may cross the newline between two paths.
_JOINED_OPTIONS = re2.Options()
_JOINED_OPTIONS.log_errors = False
_JOINED_OPTIONS.never_capture = True
_JOINED_OPTIONS.never_nl = True
# Constructs that read the whole text, not the line: \A, \z, \C (any byte, even
# a newline under never_nl), and flag groups that may turn multiline off.
_WHOLE_TEXT = re.compile(r"\\[ACz]|\(\?[^):]*-")

_LOOKAROUND = {"(?=": "lookahead (?=...)", "(?!": "negative lookahead (?!...)",
               "(?<=": "lookbehind (?<=...)", "(?<!": "negative lookbehind (?<!...)"}
_WHY = "regex() runs on RE2, which matches in time linear in the path and cannot express it"


class RegexUnsupported(ValueError):
    """A pattern :func:`linear_search` refuses: invalid, or beyond what RE2 expresses.

    Attributes:
        message (str): What is wrong and what to write instead.
        index (int): Where in the pattern (0-based character offset).
    """

    def __init__(self, message: str, index: int):
        super().__init__(message)
        self.message, self.index = message, index


def linear_search(pattern: str) -> Callable[[str], Any]:
    """Compile ``pattern`` with RE2: a function ``path -> match or None``.

    Like ``re.compile(pattern).search`` (the result is only for its truth),
    but its time is linear in the path's length whatever the pattern.

    Raises:
        RegexUnsupported: The pattern is invalid or needs what RE2 lacks
            (backreferences, lookaround, atomic groups, possessive repeats, ``\\Z``).
    """
    try:
        pattern.encode("utf-8")
    except UnicodeEncodeError as err:
        raise RegexUnsupported(f"the pattern holds a lone surrogate ({pattern[err.start]!r}), "
                               "which is not text; remove it", err.start) from None
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as err:
        raise RegexUnsupported(*_explain(pattern, err)) from None
    search: Any = _searcher(compiled)  # a function that carries its scanner
    search.many = _scanner(pattern, search)
    return search


def _native(compiled):
    """RE2's own ``Match`` and the unanchored mode, or None when the binding hides them."""
    regexp = getattr(compiled, "_regexp", None)
    anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    if regexp is None or anchor is None or not hasattr(regexp, "Match"):
        return None
    return regexp.Match, anchor


# After this many matching rows, a scan where most rows match goes on path by path.
_DENSE_AFTER = 32


def _scanner(pattern: str, search: Callable[[str], Any]):
    """``many(joined, rows)``: which of ``rows`` (sorted row numbers) the pattern matches,
    one RE2 call per matching row and one more; None where the pattern reads the whole
    text, not the path.

    In multiline mode ``^``/``$`` meet at the newlines that end each path, as
    they meet at the ends of a lone path; ``\\b`` sees a newline as a non-word
    character, as it sees the end of a lone path; ``never_nl`` keeps every
    match inside one path. Each call scans forward from the first undecided
    row, and the next starts after the row it matched: the whole scan reads
    the text about once, however many rows match.
    """
    if _WHOLE_TEXT.search(pattern):
        return None
    try:
        native = _native(re2.compile("(?m)" + pattern, _JOINED_OPTIONS))
    except re2.error:
        return None
    if native is None:
        return None
    match, anchor = native

    def many(joined: JoinedPaths, rows: np.ndarray) -> np.ndarray:
        found = np.zeros(len(rows), dtype=bool)
        data, starts, end = joined.data, joined.starts, len(joined.data)
        every_row = len(rows) == len(starts)  # sorted and distinct: row k is rows[k]
        wanted: list[int] = [] if every_row else rows.tolist()  # read only when not every_row
        k = hits = 0
        while k < len(rows):
            begin = match(anchor, data, starts[k if every_row else wanted[k]], end)[0][0]
            if begin < 0:
                break
            row = bisect_right(starts, begin) - 1  # the path holding the match
            k = row if every_row else bisect_left(wanted, row, k)  # the rows before it hold none
            if k < len(rows) and (every_row or wanted[k] == row):
                found[k] = True
                k += 1
                hits += 1
                if hits >= _DENSE_AFTER and hits * 2 > k:
                    # Most rows match: a call per row either way, and path by path
                    # skips the bookkeeping.
                    paths = joined.paths
                    rest = range(k, len(rows)) if every_row else wanted[k:]
                    found[k:] = [search(paths[i]) is not None for i in rest]
                    break
        return found

    return many


def _searcher(compiled) -> Callable[[str], Any]:
    native = _native(compiled)
    if native is None:
        def public_search(path: str):
            return compiled.search(path.encode("utf-8", "surrogatepass"))
        return public_search
    # The public search() maps byte offsets back to characters and builds a
    # match object: four times the cost of asking RE2 itself, which is all a
    # rule needs (tests/test_rules.py checks both give the same answers).
    match, anchor = native

    def search(path: str):
        data = path.encode("utf-8", "surrogatepass")  # a crafted path must not raise
        span = match(anchor, data, 0, len(data))[0]
        return None if span[0] < 0 else span

    return search


def _explain(pattern: str, err: Exception) -> tuple[str, int]:
    """(message, index in the pattern) for RE2's error ``reason: fragment``."""
    text = err.args[0] if err.args else ""
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    reason, _, fragment = text.partition(": ")
    index = max(pattern.find(fragment), 0) if fragment else 0
    if fragment.startswith("(?P") and "(?P=" in pattern:
        index = pattern.find("(?P=")
    if re.fullmatch(r"\\[1-9]\d*|\\g.*", fragment) or pattern.startswith("(?P=", index):
        return (f"backreferences (\\1, (?P=name)) are not supported: {_WHY}; write the "
                "repeated text out, or join two regex() with 'and'", index)
    if fragment in _LOOKAROUND:
        return (f"{_LOOKAROUND[fragment]} is not supported: {_WHY}; combine conditions with "
                "'and' / 'and not regex(...)' instead", index)
    if fragment == "(?>" or (reason == "bad repetition operator" and fragment.endswith("+")):
        return ("atomic groups and possessive repeats are not needed: regex() never backtracks "
                "(RE2); write the plain group or repeat", index)
    if fragment == "\\Z":
        return "\\Z is not supported (RE2); write \\z or $ for the end of the path", index
    try:  # Python's parser knows the exact position of plain syntax errors
        re.compile(pattern)
    except re.error as python_error:
        index = python_error.pos if python_error.pos is not None else index
    except Exception:  # noqa: BLE001 - only a position is sought here
        pass
    return f"invalid regular expression: {text}", index


def compile_regex(compiler, arg: ast.Constant, pattern: str) -> Callable[[str], Any]:
    """Compile a rule's regex (:func:`linear_search`); RuleError with the caret on the problem."""
    try:
        return linear_search(pattern)
    except RegexUnsupported as err:
        raise RuleError(err.message, compiler.text, _column(compiler, arg, pattern, err.index)) \
            from None


def _column(compiler, arg: ast.Constant, pattern: str, index: int) -> int:
    """The rule-text column of ``pattern[index]``: exact when the literal holds no escapes."""
    start = compiler.column(arg)
    end = compiler.column(_Offset(arg.end_col_offset))  # type: ignore[arg-type]  # set on parsed nodes
    source = compiler.text[start:end]
    prefix = len(source) - len(source.lstrip("rRuU"))
    quote = 3 if source[prefix:prefix + 3] in ('"""', "'''") else 1
    body = start + prefix + quote
    return max(start, min(body + index, end - quote - 1))


class _Offset:
    """Stands for an ast node at ``col_offset`` (to convert byte offsets with ``column``)."""

    def __init__(self, col_offset: int):
        self.col_offset = col_offset
