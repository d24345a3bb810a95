"""The nodes of the intermediate parameter tree (see :mod:`multiopt_lab._src.render.tree_model`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from multiopt_lab._src.render.params import ParamInfo

__all__ = ["ParameterTree", "ParamNode", "ModuleNode", "FoldNode", "Totals"]


@dataclass(frozen=True)
class Totals:
    """Counts under one node of the tree.

    Attributes:
        params (int): Number of parameter arrays.
        elements (int): Number of scalar elements.
        group_elements (tuple[int, ...]): Elements per group, in partition order.
        flagged (int): Parameters carrying a diagnostic flag.
        matches (int): Parameters matching the current search.
    """

    params: int
    elements: int
    group_elements: tuple[int, ...]
    flagged: int
    matches: int

    def scaled(self, factor: int) -> Totals:
        """These totals repeated ``factor`` times (for a folded run)."""
        return Totals(
            self.params * factor,
            self.elements * factor,
            tuple(n * factor for n in self.group_elements),
            self.flagged * factor,
            self.matches * factor,
        )


@dataclass(frozen=True)
class ParamNode:
    """One parameter array (a leaf).

    Attributes:
        name (str): Last path segment (``weight``).
        info (ParamInfo): Path, shape, dtype, size, group, rule and flags.
        matched (bool): Whether it matches the current search.
    """

    name: str
    info: ParamInfo
    matched: bool = False

    @property
    def path(self) -> str:
        """The full dotted path."""
        return self.info.path


@dataclass(frozen=True)
class ModuleNode:
    """A module (an inner node) with its children in parameter order.

    Attributes:
        name (str): Last path segment (``attn``); the root's display name for the root.
        path (str): Dotted path, ``""`` for the root.
        children (tuple): ``ModuleNode``, ``FoldNode`` and ``ParamNode`` items.
        totals (Totals): Counts over everything below.
    """

    name: str
    path: str
    children: tuple
    totals: Totals


@dataclass(frozen=True)
class FoldNode:
    """A run of numbered sibling blocks shown once.

    Attributes:
        parent_path (str): Path of the module holding the run (``layers``).
        names (tuple[str, ...]): The folded siblings' names (``"0"`` .. ``"31"``).
        block (ModuleNode): The first block, standing for all of them.
        totals (Totals): Counts over the whole run.
    """

    parent_path: str
    names: tuple[str, ...]
    block: ModuleNode
    totals: Totals = field(compare=False)

    @property
    def name(self) -> str:
        """``[0..31]`` for consecutive indices, else the names listed."""
        first, last = self.names[0], self.names[-1]
        numbers = [int(n) for n in self.names]
        if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            return f"[{first}..{last}]"
        return "[" + ", ".join(self.names) + "]"

    @property
    def count(self) -> int:
        """How many blocks the run stands for."""
        return len(self.names)

    @property
    def path(self) -> str:
        """Path of the first block of the run (``layers.0``)."""
        return self.block.path


@dataclass(frozen=True)
class ParameterTree:
    """A built tree and the group labels its indices refer to.

    Attributes:
        root (ModuleNode): The root module (``path == ""``).
        group_labels (tuple[str, ...]): Labels in partition order, fallback last.
    """

    root: ModuleNode
    group_labels: tuple[str, ...]
