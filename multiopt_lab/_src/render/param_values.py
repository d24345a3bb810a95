"""The tree's value column: each parameter's latest value of one per-parameter metric.

:func:`value_cells` turns ``{path: value}`` into the text of each parameter
row's cell, for a built tree: a folded run of blocks (``layers.[0..31]``)
shows, on the row standing for all of them, the range over the blocks. A
value far from its group's median (ten times or more, either way) is
marked, so the odd one out shows without sorting. Both lowerings draw these
cells; only the HTML form has the column today.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

from multiopt_lab._src.render.tree_nodes import FoldNode, ParameterTree, ParamNode

__all__ = ["ValueCell", "value_cells", "value_cell_html", "FAR_FACTOR"]

#: A value this many times above or below its group's median is marked.
FAR_FACTOR = 10.0


@dataclass(frozen=True)
class ValueCell:
    """What one parameter row shows in the value column.

    Attributes:
        text (str): The value (``0.00123``), or a range over folded blocks.
        title (str): The tooltip: metric, value(s), and how far from the group's median.
        far (bool): Ten times or more from its group's median (of any block, when folded).
    """

    text: str
    title: str
    far: bool


def _number(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else str(value)


def _medians(values: Mapping[str, float], groups: Mapping[str, int]) -> dict[int, float]:
    by_group: dict[int, list[float]] = {}
    for path, value in values.items():
        if path in groups and math.isfinite(value):
            by_group.setdefault(groups[path], []).append(value)
    return {group: statistics.median(found) for group, found in by_group.items()}


def _far(value: float, median: float | None) -> bool:
    if not math.isfinite(value):
        return True
    if median is None or median <= 0 or value <= 0:
        return median is not None and median > 0 and value == 0
    return value >= median * FAR_FACTOR or value <= median / FAR_FACTOR


def value_cells(tree: ParameterTree, values: Mapping[str, float], metric: str) -> dict[str, ValueCell]:
    """The value cell of every parameter row of ``tree`` that has a value.

    Args:
        tree (ParameterTree): The built tree (folded or not).
        values (Mapping[str, float]): ``{path: value}`` (``History.parameter_values``).
        metric (str): The metric's name, for the tooltip.

    Returns:
        dict[str, ValueCell]: Keyed by the row's path (a folded row: the first block's).
    """
    groups: dict[str, int] = {}
    rows: list[tuple[ParamNode, list[str]]] = []

    def walk(node, block_paths) -> None:
        if isinstance(node, ParamNode):
            groups[node.info.path] = node.info.group
            rows.append((node, block_paths(node.info.path)))
            return
        if isinstance(node, FoldNode):
            first = f"{node.parent_path}.{node.names[0]}" if node.parent_path else node.names[0]

            def siblings(path, first=first, node=node):
                rest = path[len(first):]
                prefix = f"{node.parent_path}." if node.parent_path else ""
                return [f"{prefix}{name}{rest}" for name in node.names]

            for child in node.block.children:
                walk(child, siblings)
            return
        for child in node.children:
            walk(child, block_paths)

    walk(tree.root, lambda path: [path])
    for node, paths in rows:
        for path in paths:
            groups.setdefault(path, node.info.group)
    medians = _medians(values, groups)
    cells = {}
    for node, paths in rows:
        found = [(p, float(values[p])) for p in paths if p in values]
        if not found:
            continue
        median = medians.get(node.info.group)
        label = node.info.label
        far = any(_far(v, median) for _, v in found)
        note = "" if median is None else f" (median of {label}: {_number(median)})"
        numbers = [v for _, v in found]
        low, high = min(numbers), max(numbers)
        if len(found) == 1:
            cells[node.info.path] = ValueCell(_number(low), f"{metric} {_number(low)}{note}", far)
            continue
        text = _number(low) if low == high else f"{_number(low)}\u2013{_number(high)}"
        title = f"{metric} over {len(found)} folded blocks: {_number(low)} to {_number(high)}{note}"
        if far:
            worst = max(found, key=lambda item: _distance(item[1], median))
            title += f"; farthest: {worst[0]} ({_number(worst[1])})"
        cells[node.info.path] = ValueCell(text, title, far)
    return cells


def _distance(value: float, median: float | None) -> float:
    if not median or median <= 0 or value <= 0 or not math.isfinite(value):
        return math.inf
    return abs(math.log10(value / median))


def value_cell_html(cell: ValueCell | None) -> str:
    """The ``<span class="mol-value">`` of one row (empty for a row without a value).
    """
    if cell is None:
        return '<span class="mol-value"></span> '
    far = " mol-value-far" if cell.far else ""
    mark = " !" if cell.far else ""
    return f'<span class="mol-value{far}" title="{escape(cell.title)}">{escape(cell.text)}{mark}</span> '

