"""What moved between two assignments: a list of moves that prints as a grouped summary.
"""

from __future__ import annotations

from multiopt_lab._src.display import html_for
from multiopt_lab._src.text_fit import DEFAULT_WIDTH, check_width, glue, wrap

__all__ = ["Moves"]

_MAX_LISTED = 50


class Moves(list):
    """A ``list`` of ``Move(path, source, target)``, printed grouped by direction.

    ``source`` is None for a parameter only the other side has (shown as
    ``(new)``), ``target`` None for one it lacks (``(gone)``).
    """

    def directions(self) -> dict[tuple, list[str]]:
        """``(source, target)`` -> the paths moving that way, in order of first appearance.
        """
        found: dict[tuple, list[str]] = {}
        for move in self:
            found.setdefault((move.source, move.target), []).append(move.path)
        return found

    def text(self, width: int | None = DEFAULT_WIDTH) -> str:
        """What moved, grouped by direction, in lines of at most ``width`` columns
        (broken between paths; ``None``: no limit).
        """
        width = check_width(width)
        if not self:
            return "no parameter moves"
        n = len(self)
        lines = [f"{n:,} parameter{'s move' if n != 1 else ' moves'}:"]
        for (source, target), paths in self.directions().items():
            shown = ", ".join(glue(path) for path in paths[:_MAX_LISTED])
            if len(paths) > _MAX_LISTED:
                shown += f", ... and {len(paths) - _MAX_LISTED:,} more"
            head = f"{_side(source, '(new)')} -> {_side(target, '(gone)')} ({len(paths):,}): "
            lines += wrap(head + shown, width, "  ", " " * 4)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str | None:
        return html_for("moves", self)


def _side(label, missing: str) -> str:
    return missing if label is None else label
