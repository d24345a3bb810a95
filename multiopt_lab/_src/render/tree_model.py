"""The intermediate parameter tree that the text and HTML forms both lower.

An :class:`~multiopt_lab.Assignment` is flat (path -> group);
:func:`build_tree` nests it by module path (``layers.3.attn.q.weight`` sits
under ``layers`` > ``3`` > ``attn`` > ``q``), adds per-module totals and folds
runs of numbered sibling blocks that have the same structure *and* the same
assignment (``layers.0`` .. ``layers.31``) into one :class:`FoldNode`.

Folding comes first, drawing second: only what the folded view shows is
built. The nesting of the paths, and which numbered siblings share a
structure, are worked out once per parameter structure (a
:class:`_Skeleton`, kept while the structure is in use); for each
assignment a run of such siblings is split where the blocks' parameters
differ in group, flags or search match, compared a whole run at once in
numpy; module totals come from prefix sums. The cost of a redraw is the
size of what is shown, not of the model.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection

import numpy as np

from multiopt_lab._src.render.params import ParamInfos, flagged_params, param_infos, per_assignment
from multiopt_lab._src.render.tree_nodes import FoldNode, ModuleNode, ParameterTree, ParamNode, Totals

__all__ = ["ParameterTree", "ParamNode", "ModuleNode", "FoldNode", "Totals", "build_tree"]


class _Module:
    """A module of the skeleton: its children, its leaves' span in tree order, its structure.

    ``children`` holds ``(name, _Module)`` and ``(name, row)`` pairs (a row of
    the table for a parameter); ``lo:hi`` is the span of its parameters in the
    tree's depth-first order; ``runs`` the foldable runs among its children:
    ``(first, stop, starts, width)`` for children ``first:stop``, numbered
    modules of one structure, whose spans start at ``starts`` and are
    ``width`` parameters long.
    """

    __slots__ = ("name", "path", "children", "lo", "hi", "structure", "runs")

    def __init__(self, name: str, path: str):
        self.name, self.path = name, path
        self.children: list = []
        self.lo = self.hi = self.structure = 0
        self.runs: list = []


class _Skeleton:
    """What a tree shows that depends only on the paths, shapes and dtypes.

    Attributes:
        root (_Module): The nesting of the paths (the root's name is set per build).
        order (numpy.ndarray): Table row of each parameter, in depth-first tree order.
    """

    def __init__(self, table):
        paths = table.paths
        # One row per distinct path (the last one, as a dict keyed by path keeps it).
        last: dict[str, int] = {}
        for i, path in enumerate(paths):
            last[path] = i
        nested: dict = {}
        for path, row in last.items():
            *modules, leaf = path.split(".")
            node = nested
            for part in modules:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ValueError(
                        f"Parameter path {path!r} nests under {paths[child]!r}, which is itself a "
                        "parameter; expected module paths and parameter paths to be distinct."
                    )
                node = child
            node[leaf] = row
        # Structures interned to small ints: two blocks compare in one int comparison.
        self._ids: dict[tuple, int] = {}
        self._leaf_ids = [self._intern(("p",) + s) for s in table.structures]
        self._structure_ids = table.structure_ids.tolist()
        self._order: list[int] = []
        self.root = self._module("", "", nested)
        self.order = np.array(self._order, dtype=np.intp)
        del self._order, self._ids, self._leaf_ids, self._structure_ids

    def _intern(self, key: tuple) -> int:
        return self._ids.setdefault(key, len(self._ids))

    def _module(self, name: str, path: str, nested: dict) -> _Module:
        node = _Module(name, path)
        node.lo = len(self._order)
        key: list = ["m"]
        for child_name, value in nested.items():
            if isinstance(value, dict):
                child = self._module(child_name, f"{path}.{child_name}" if path else child_name, value)
                node.children.append((child_name, child))
                key.append((child_name, child.structure))
            else:
                self._order.append(value)
                node.children.append((child_name, value))
                key.append((child_name, self._leaf_ids[self._structure_ids[value]]))
        node.hi = len(self._order)
        node.structure = self._intern(tuple(key))
        node.runs = self._runs(node.children)
        return node

    @staticmethod
    def _runs(children: list) -> list:
        """Maximal runs (2 or more) of consecutive numbered modules sharing a structure."""
        runs, first = [], None
        for i, (name, child) in enumerate(children + [("", None)]):
            foldable = isinstance(child, _Module) and name.isdigit()
            if first is not None and not (foldable and child.structure == children[first][1].structure):
                if i - first >= 2:
                    members = [c for _, c in children[first:i]]
                    starts = np.array([c.lo for c in members], dtype=np.intp)
                    runs.append((first, i, starts, members[0].hi - members[0].lo))
                first = None
            if foldable and first is None:
                first = i
        return runs


_SKELETONS: OrderedDict[object, _Skeleton] = OrderedDict()
_SKELETONS_KEPT = 4
_lock = threading.Lock()


def _skeleton(table) -> _Skeleton:
    """The table's skeleton, built once per structure (the editor redraws one table often)."""
    key = getattr(table, "key", None)
    if key is not None:
        with _lock:
            found = _SKELETONS.get(key)
            if found is not None:
                _SKELETONS.move_to_end(key)
                return found
    skeleton = _Skeleton(table)
    if key is not None:
        with _lock:
            _SKELETONS[key] = skeleton
            while len(_SKELETONS) > _SKELETONS_KEPT:
                _SKELETONS.popitem(last=False)
    return skeleton


class _RowFacts:
    """Per assignment, in tree order: each parameter's fold signature, and sums for totals."""

    def __init__(self, assignment, skeleton: _Skeleton):
        table, order = assignment.table, skeleton.order
        self.n_groups = n_groups = len(assignment.group_labels)
        self.winners = np.asarray(assignment.winners, dtype=np.int64)[order]
        self.sizes = np.array(table.sizes, dtype=np.int64)[order] if len(order) else np.zeros(0, np.int64)
        # Two parameters fold together when group, flags and labels also matched agree
        # (shape and dtype agree already: their blocks share a structure).
        kinds: dict[tuple, int] = {((), ()): 0}
        flag_kind = np.zeros(len(table), dtype=np.int64)
        has_flags = np.zeros(len(table), dtype=bool)
        row_of = table.index
        for path, flagged in flagged_params(assignment).items():
            row = row_of(path)
            flag_kind[row] = kinds.setdefault((flagged.flags, flagged.also_matched), len(kinds))
            has_flags[row] = bool(flagged.flags)
        self.signature = self.winners + n_groups * flag_kind[order]
        self.matched_weight = n_groups * len(kinds)  # a search match adds one more digit
        self.flagged = np.concatenate([[0], np.cumsum(has_flags[order])]).tolist()
        self.groups = self._group_sums()

    def _group_sums(self):
        """Prefix sums of elements per group, ``(n_groups, n + 1)``; None if too large."""
        n = len(self.winners)
        if self.n_groups * (n + 1) > 8_000_000:
            return None  # many groups on a huge model: each shown span is summed instead
        per_group = np.zeros((self.n_groups, n + 1), dtype=np.int64)
        per_group[self.winners, np.arange(1, n + 1)] = self.sizes
        return np.cumsum(per_group, axis=1)

    def group_elements(self, lo: int, hi: int) -> list[int]:
        """Elements per group among the parameters ``lo:hi`` (tree order)."""
        if self.groups is not None:
            return (self.groups[:, hi] - self.groups[:, lo]).tolist()
        # Float sums are exact below 2**53 elements.
        return np.bincount(self.winners[lo:hi], weights=self.sizes[lo:hi],
                           minlength=self.n_groups).astype(np.int64).tolist()


class _Builder:
    """Builds the shown nodes of one tree: a folded run is entered once."""

    def __init__(self, assignment, skeleton: _Skeleton, facts: _RowFacts, fold: bool,
                 unfold: Collection[str], highlight: Collection[str]):
        self.infos: ParamInfos = param_infos(assignment)
        self.facts, self.fold, self.unfold, self.highlight = facts, fold, unfold, highlight
        self.paths = assignment.table.paths
        self.signature = facts.signature
        matches = np.zeros(len(skeleton.order) + 1, dtype=np.int64)
        if highlight:
            matched = self._matched(assignment.table, skeleton, highlight)
            self.signature = facts.signature + facts.matched_weight * matched
            matches[1:] = np.cumsum(matched)
        self.matches = matches.tolist()

    @staticmethod
    def _matched(table, skeleton: _Skeleton, highlight) -> np.ndarray:
        """Per parameter in tree order: is its path one of ``highlight``."""
        if len(highlight) < len(table):
            rows = []
            for path in highlight:
                try:
                    rows.append(table.index(path))
                except KeyError:
                    pass
            in_table = np.zeros(len(table), dtype=bool)
            in_table[np.array(rows, dtype=np.intp)] = True
        else:
            in_table = np.fromiter((p in highlight for p in table.paths), dtype=bool, count=len(table))
        # A path repeated in the table: only its last row is in the tree, and it matches.
        return in_table[skeleton.order]

    def totals(self, lo: int, hi: int) -> Totals:
        counts = self.facts.group_elements(lo, hi)
        flagged, matches = self.facts.flagged, self.matches
        return Totals(hi - lo, sum(counts), tuple(counts), flagged[hi] - flagged[lo], matches[hi] - matches[lo])

    def module(self, node: _Module, name: str) -> ModuleNode:
        runs = {run[0]: run for run in node.runs} if self.fold and node.path not in self.unfold else {}
        children = []
        i = 0
        while i < len(node.children):
            run = runs.get(i)
            if run is not None:
                children += self.fold_run(node, run)
                i = run[1]
                continue
            child_name, child = node.children[i]
            if isinstance(child, _Module):
                children.append(self.module(child, child_name))
            else:
                children.append(ParamNode(child_name, self.infos.row(child),
                                          bool(self.highlight) and self.paths[child] in self.highlight))
            i += 1
        return ModuleNode(name, node.path, tuple(children), self.totals(node.lo, node.hi))

    def fold_run(self, node: _Module, run) -> list:
        """A run of same-structure blocks, split where their parameters' signatures differ."""
        first, stop, starts, width = run
        blocks = self.signature[starts[:, None] + np.arange(width)]
        same_as_previous = (blocks[1:] == blocks[:-1]).all(axis=1).tolist()
        out: list[FoldNode | ModuleNode] = []
        begin = first
        for i in range(first + 1, stop + 1):
            if i < stop and same_as_previous[i - first - 1]:
                continue
            members = node.children[begin:i]
            block = self.module(members[0][1], members[0][0])
            if len(members) >= 2:
                out.append(FoldNode(node.path, tuple(name for name, _ in members), block,
                                    block.totals.scaled(len(members))))
            else:
                out.append(block)
            begin = i
        return out


def build_tree(
    assignment,
    *,
    root_name: str = "model",
    fold: bool = True,
    unfold: Collection[str] = (),
    highlight: Collection[str] = (),
) -> ParameterTree:
    """Nest an assignment by module path, with totals and folded repeats.

    Args:
        assignment (Assignment): What :func:`multiopt_lab.assign` returned.
        root_name (str, optional): Name shown on the root row. Default: ``"model"``.
        fold (bool, optional): Fold runs of identical numbered blocks. Default: ``True``.
        unfold (Collection[str], optional): Module paths whose runs stay unfolded
            (``{"layers"}``; ``""`` is the root). Default: ``()``.
        highlight (Collection[str], optional): Paths that match a search; a block
            whose matches differ from its siblings' is not folded with them.
            Default: ``()``.

    Returns:
        ParameterTree: The root (whose ``path`` is ``""``) and the group labels.
    """
    highlight = highlight if isinstance(highlight, (set, frozenset, dict)) else frozenset(highlight)
    unfold = unfold if isinstance(unfold, (set, frozenset)) else frozenset(unfold)
    # The last tree built from this assignment: a redraw and the search status that
    # follows it (or the text form after the HTML) build it once.
    options = (root_name, bool(fold), frozenset(unfold), frozenset(highlight))
    last = per_assignment(assignment, "render.last_tree", lambda a: [None])
    if last[0] is not None and last[0][0] == options:
        return last[0][1]
    skeleton = _skeleton(assignment.table)
    # Row facts depend on the assignment and the structure alone: every redraw of one
    # assignment (search, unfold, selection) reuses them.
    facts = per_assignment(assignment, "render.tree_facts", lambda a: _RowFacts(a, skeleton))
    root = _Builder(assignment, skeleton, facts, fold, unfold, highlight).module(skeleton.root, root_name)
    tree = ParameterTree(root, tuple(assignment.group_labels))
    last[0] = (options, tree)  # one assignment of a pair: atomic for other threads
    return tree

