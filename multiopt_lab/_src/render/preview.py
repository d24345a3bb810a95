"""What a rule edit would move, in words: "12 parameters, 1.3 M elements: adamw -> muon".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from multiopt_lab._src.render.numbers import human_count

__all__ = ["move_lines", "move_summary"]


def _elements(n: int) -> str:
    return f"{n:,} elements" if n < 10_000 else f"{human_count(n)} elements"


def move_lines(moves: Sequence, sizes: Mapping[str, int]) -> list[str]:
    """One line per (source, target) pair, in order of first appearance.

    Args:
        moves (Sequence[Move]): From ``Assignment.diff`` or ``MultiOptimizer.repartition``.
        sizes (Mapping[str, int]): path -> number of elements.
    """
    pairs: dict[tuple, list[int]] = {}
    for move in moves:
        counts = pairs.setdefault((move.source, move.target), [0, 0])
        counts[0] += 1
        counts[1] += sizes.get(move.path, 0)
    lines = []
    for (source, target), (count, elements) in pairs.items():
        noun = "parameter" if count == 1 else "parameters"
        lines.append(f"{count:,} {noun}, {_elements(elements)}: {source or '(new)'} -> {target or '(gone)'}")
    return lines


def move_summary(moves: Sequence, sizes: Mapping[str, int]) -> str:
    """The lines of :func:`move_lines` joined, or ``"no parameter moves"``.
    """
    lines = move_lines(moves, sizes)
    return "\n".join(lines) if lines else "no parameter moves"
