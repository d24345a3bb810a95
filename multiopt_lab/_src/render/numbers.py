"""Number and share formatting shared by the text and HTML forms.
"""

from __future__ import annotations

__all__ = ["grouped", "human_count", "percent", "plural", "shape_text", "share_text"]


def grouped(n: int) -> str:
    """``n`` with thousands separators.
    """
    return f"{n:,}"


def human_count(n: int) -> str:
    """A short count for prose: ``950``, ``12.3 k``, ``1.3 M``, ``7.2 G``.
    """
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            return f"{n / limit:.1f} {suffix}"
    return str(n)


def percent(part: int, whole: int) -> str:
    """``part / whole`` as a whole percentage that never rounds a share away.

    A share that is neither none nor all never shows as ``0%`` or ``100%``.
    """
    if whole <= 0 or part <= 0:
        return "0%"
    if part >= whole:
        return "100%"
    value = round(100 * part / whole)
    if value < 1:
        return "<1%"
    if value > 99:
        return ">99%"
    return f"{value}%"


def plural(n: int, word: str) -> str:
    """``1 param``, ``2 params``.
    """
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def shape_text(shape) -> str:
    """``[256, 64]``; ``[]`` for a scalar.
    """
    return "[" + ", ".join(str(d) for d in shape) + "]"


def share_text(group_elements, labels) -> str:
    """Which groups own the elements: ``muon`` alone, or ``muon 82% | adamw 18%``.

    Args:
        group_elements (Sequence[int]): Elements per group, partition order.
        labels (Sequence[str]): Group labels, partition order.
    """
    total = sum(group_elements)
    present = [(labels[i], n) for i, n in enumerate(group_elements) if n]
    if len(present) == 1:
        return present[0][0]
    return " | ".join(f"{label} {percent(n, total)}" for label, n in present)
