# Tests the private modules' own units: multiopt_lab._src.render.params,
#   multiopt_lab._src.render.tree_nodes.
"""The parameter tree as it was built before folding came first (commit 61d2966, with issue 24's findings), kept as an oracle.

It nests every parameter, computes every module's signature and totals, then
folds: its result is what ``build_tree`` must still give, node for node.
Only tests import it.
"""

from __future__ import annotations

from collections.abc import Collection

from multiopt_lab._src.render.params import ParamInfo, flag_of, rule_display
from multiopt_lab._src.render.tree_nodes import (
    FoldNode, ModuleNode, ParamNode, ParameterTree, Totals,
)


def old_param_infos(assignment) -> dict[str, ParamInfo]:
    """``param_infos`` before folding came first (with issue 24's findings): every
    parameter's info, built eagerly."""
    table = assignment.table
    labels = assignment.group_labels
    rules = [rule_display(r) for r in assignment.rules]
    diagnostics = assignment.diagnostics
    near_misses = {miss.path: miss for miss in diagnostics.near_misses}
    overlaps = diagnostics.overlaps
    by_path = diagnostics.by_path
    group_index = assignment.group_index
    infos = {}
    for path, shape, dtype, size, modules in zip(table.paths, table.shapes, table.dtypes,
                                                 table.sizes, table.module_chains):
        group = group_index[path]
        also, flags, nearly, like, found = (), (), "", "", tuple(by_path.get(path, ()))
        if found:
            flags = tuple(flag_of(f) for f in found if f.flagged)
        if path in near_misses:
            miss = near_misses[path]
            nearly, like = miss.label, f"{miss.like} ({miss.like_kind})"
        if path in overlaps:
            also = tuple(overlaps[path][1:])
        infos[path] = ParamInfo(path, shape, dtype, size, group, labels[group], rules[group], also,
                                flags, nearly, like, modules, found)
    return infos


class _Builder:
    def __init__(self, infos: dict[str, ParamInfo], n_groups: int, highlight: Collection[str]):
        self.infos = infos
        self.n_groups = n_groups
        self.highlight = highlight
        # Structure + assignment signatures, interned to small ints so that
        # comparing two 100-parameter blocks is one int comparison.
        self.signatures: dict[tuple, int] = {}
        self.signature_of: dict[int, int] = {}

    def intern(self, node, key: tuple) -> None:
        self.signature_of[id(node)] = self.signatures.setdefault(key, len(self.signatures))

    def leaf(self, name: str, info: ParamInfo) -> ParamNode:
        node = ParamNode(name, info, info.path in self.highlight)
        key = ("p", info.shape, info.dtype, info.group, info.also_matched, info.flags, node.matched)
        self.intern(node, key)
        return node

    def leaf_totals(self, node: ParamNode) -> Totals:
        counts = [0] * self.n_groups
        counts[node.info.group] = node.info.size
        return Totals(1, node.info.size, tuple(counts), int(bool(node.info.flags)), int(node.matched))

    def module(self, name: str, path: str, nested: dict, fold: bool, unfold: Collection[str]) -> ModuleNode:
        built = []
        for child_name, value in nested.items():
            child_path = f"{path}.{child_name}" if path else child_name
            if isinstance(value, ParamInfo):
                built.append(self.leaf(child_name, value))
            else:
                built.append(self.module(child_name, child_path, value, fold, unfold))
        key = ("m",) + tuple((getattr(c, "name", ""), self.signature_of[id(c)]) for c in built)
        children = tuple(self.fold_runs(path, built) if fold and path not in unfold else built)
        node = ModuleNode(name, path, children, self.sum_totals(children))
        self.intern(node, key)
        return node

    def fold_runs(self, path: str, children: list) -> list:
        out: list = []
        run: list[ModuleNode] = []

        def close_run() -> None:
            if len(run) >= 2:
                out.append(FoldNode(path, tuple(c.name for c in run), run[0], run[0].totals.scaled(len(run))))
            else:
                out.extend(run)
            run.clear()

        for child in children:
            foldable = isinstance(child, ModuleNode) and child.name.isdigit()
            same = run and foldable and self.signature_of[id(child)] == self.signature_of[id(run[0])]
            if not same:
                close_run()
            if foldable:
                run.append(child)
            else:
                out.append(child)
        close_run()
        return out

    def sum_totals(self, children) -> Totals:
        params = elements = flagged = matches = 0
        groups = [0] * self.n_groups
        for child in children:
            t = self.leaf_totals(child) if isinstance(child, ParamNode) else child.totals
            params += t.params
            elements += t.elements
            flagged += t.flagged
            matches += t.matches
            for i, n in enumerate(t.group_elements):
                groups[i] += n
        return Totals(params, elements, tuple(groups), flagged, matches)


def _nest(infos: dict[str, ParamInfo]) -> dict:
    root: dict = {}
    for path, info in infos.items():
        *modules, leaf = path.split(".")
        node = root
        for part in modules:
            child = node.setdefault(part, {})
            if isinstance(child, ParamInfo):
                raise ValueError(
                    f"Parameter path {path!r} nests under {child.path!r}, which is itself a "
                    "parameter; expected module paths and parameter paths to be distinct."
                )
            node = child
        node[leaf] = info
    return root


def old_build_tree(assignment, *, root_name: str = "model", fold: bool = True,
                   unfold: Collection[str] = (), highlight: Collection[str] = ()) -> ParameterTree:
    """``build_tree`` of 61d2966."""
    infos = old_param_infos(assignment)
    highlight = highlight if isinstance(highlight, (set, frozenset, dict)) else frozenset(highlight)
    unfold = unfold if isinstance(unfold, (set, frozenset)) else frozenset(unfold)
    builder = _Builder(infos, len(assignment.group_labels), highlight)
    root = builder.module(root_name, "", _nest(infos), fold, unfold)
    return ParameterTree(root, tuple(assignment.group_labels))
