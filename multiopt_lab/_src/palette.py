"""Group colours shared by the tree (``render``) and the figures (``plots``).

The palette is Okabe and Ito's, chosen to stay distinguishable for the common
forms of colour blindness; every colour keeps a contrast ratio above 3:1 on
both a white and a near-black (JupyterLab dark theme) background, so the same
hex codes serve both themes.
"""

from __future__ import annotations

__all__ = ["PALETTE", "FALLBACK_GREY", "group_colour"]

#: Colours in the order groups receive them (blue, orange, bluish green,
#: vermillion, reddish purple, sky blue, yellow).
PALETTE: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
)

#: Neutral colour for things that belong to no group (totals, the loss).
FALLBACK_GREY = "#8C8C8C"


def group_colour(index: int) -> str:
    """The colour of the group at ``index`` (0-based); repeats past seven.

    Args:
        index (int): The group's position in the partition.
    """
    if index < 0:
        raise ValueError(f"group index must be >= 0, got {index}")
    return PALETTE[index % len(PALETTE)]
