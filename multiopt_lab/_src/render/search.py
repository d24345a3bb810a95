"""Search the tree by path glob, by module class or by rule expression.

A query made only of path characters (letters, digits, ``_ . - * ? [ ]``) is a
path glob; without a wildcard it matches anywhere in the path (``attn`` means
``*attn*``), unless it is exactly the class name of a module of the model
(``SwitchLinear``): then it finds the parameters inside such modules. Anything
else is a rule expression (``ndim == 1 and size > 100``, ``module ==
"RMSNorm"``), parsed by :func:`multiopt_lab._src.rules.rule`.
"""

from __future__ import annotations

import fnmatch
import re
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

from multiopt_lab._src.rules import RuleError, rule
from multiopt_lab._src.render.text import walk
from multiopt_lab._src.render.tree_model import ParamNode

__all__ = ["SearchResult", "search_paths", "shown_matches"]

_PATHLIKE = re.compile(r"^[\w.*?\[\]-]+$")
# table structure (its key: paths, shapes, dtypes, module classes) -> the last queries'
# results: a search reads those, never the groups, so a new assignment of the same
# parameters (each keystroke in the rule editor) reuses them.
_RESULTS: weakref.WeakKeyDictionary[object, OrderedDict] = weakref.WeakKeyDictionary()
_RESULTS_KEPT = 8
_lock = threading.Lock()


@dataclass(frozen=True)
class SearchResult:
    """What a query found.

    Attributes:
        query (str): The query, stripped.
        kind (str): ``"none"`` (empty query), ``"glob"``, ``"module"`` (a class name) or ``"rule"``.
        paths (tuple[str, ...]): Matching paths, in parameter order.
        error (RuleError | None): Why a rule query could not be used.
    """

    query: str
    kind: str
    paths: tuple[str, ...]
    error: RuleError | None = None

    @property
    def active(self) -> bool:
        """Whether a usable query is in force (highlighting applies)."""
        return self.kind != "none" and self.error is None

    def summary(self, shown: int | None = None) -> str:
        """One line for the search box's status: count, or the error.

        Args:
            shown (int, optional): Matching rows the tree shows; when folded
                blocks hide some matches the line says how many are visible.
                Default: ``None`` (all are).
        """
        if self.kind == "none":
            return ""
        if self.error is not None:
            return str(self.error)
        literal = self.kind in ("rule", "module") or any(c in self.query for c in "*?[")
        query = self.query if literal else f"*{self.query}*"
        n = len(self.paths)
        line = f"{self.kind} {query}: {n:,} match" + ("" if n == 1 else "es")
        if shown is not None and shown < n:
            line += f" ({shown:,} shown; unfold for the rest)"
        return line


def shown_matches(tree) -> int:
    """How many search matches a built tree shows as rows (folded blocks show one block).

    Args:
        tree (ParameterTree): From :func:`~multiopt_lab._src.render.tree_model.build_tree`
            with ``highlight=`` the search's paths.
    """
    return sum(1 for _, node in walk(tree.root) if isinstance(node, ParamNode) and node.matched)


def search_paths(assignment, query: str) -> SearchResult:
    """The parameters of ``assignment`` that ``query`` matches.

    Args:
        assignment (Assignment): Supplies the parameter table.
        query (str): A path glob or a rule expression (see the module docstring).

    Returns:
        SearchResult: Never raises for a bad rule: the error is in ``.error``.
    """
    query = query.strip()
    table = assignment.table
    if not query:
        return SearchResult("", "none", ())
    with _lock:
        try:
            kept = _RESULTS.setdefault(getattr(table, "key", table), OrderedDict())
        except TypeError:  # a table that cannot be weakly referenced: not kept
            kept = OrderedDict()
        found = kept.get(query)
        if found is not None:
            kept.move_to_end(query)
            return found
    found = _search(table, query)
    with _lock:
        kept[query] = found
        while len(kept) > _RESULTS_KEPT:
            kept.popitem(last=False)
    return found


def _search(table, query: str) -> SearchResult:
    if query.isidentifier() and getattr(table, "has_modules", False) and \
            any(query in chain for chain in table.chains):
        inside = tuple(p for p, chain in zip(table.paths, table.module_chains) if query in chain)
        return SearchResult(query, "module", inside)
    if _PATHLIKE.match(query):
        pattern = query if any(c in query for c in "*?[") else f"*{query}*"
        return SearchResult(query, "glob", tuple(p for p in table.paths if fnmatch.fnmatchcase(p, pattern)))
    try:
        mask = rule(query).select(table)
    except RuleError as err:
        return SearchResult(query, "rule", (), err)
    return SearchResult(query, "rule", tuple(p for p, hit in zip(table.paths, mask) if hit))
