"""Fitting the text forms into a width: the one rule every text form follows.

A notebook shows text output with ``word-break: break-all``: a line wider than
the output area wraps at any character, inside a path or a name. So no text
form writes a line wider than its ``width`` (default :data:`DEFAULT_WIDTH`,
100 columns, which fits a JupyterLab output at 1000 px with the side bar
closed). Tables shorten a cell with an ellipsis rather than wrap it (a path
keeps every segment and shortens the longest ones); sentences break between
words, never inside one. ``width=None`` means no limit (a file, a log). A
message that names many paths names a few and counts the rest
(:func:`describe_paths`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["DEFAULT_WIDTH", "MIN_WIDTH", "ELLIPSIS", "check_width", "clip", "clip_path", "clip_word",
           "glue", "wrap", "wrap_lines", "shrink_widths", "describe_paths"]

#: Columns a text form fills unless told otherwise.
DEFAULT_WIDTH = 100
#: The narrowest width a text form accepts.
MIN_WIDTH = 20
#: Marks a shortened cell, segment or word (one column wide).
ELLIPSIS = "\u2026"

#: A space that never breaks a line: :func:`glue` puts it between the words of one item.
_GLUE = "\u00a0"
_TOKENS = re.compile(r"[^ ]+| +")


def check_width(width) -> int | None:
    """``width`` as a number of columns, or ``None`` for no limit.

    Raises:
        ValueError: ``width`` is not a whole number >= :data:`MIN_WIDTH` (or ``None``).
    """
    if width is None:
        return None
    if isinstance(width, bool) or not isinstance(width, int) or width < MIN_WIDTH:
        raise ValueError(f"width must be a whole number of columns >= {MIN_WIDTH}, or None for no "
                         f"limit; got {width!r}")
    return width


def clip(text: str, width: int | None) -> str:
    """``text`` cut to ``width`` columns, the last one an ellipsis when anything was cut.
    """
    if width is None or len(text) <= width:
        return text
    if width <= 0:
        return ""
    return text[: width - 1].rstrip() + ELLIPSIS


def shrink_widths(natural: Sequence[int], minimum: Sequence[int], total: int) -> list[int]:
    """Widths summing to at most ``total``: the widest give way first, none below its minimum.

    The natural widths when they fit; otherwise every width is capped at one
    level (the largest that fits), so that a long column is cut before a
    short one is touched. When even the minimums do not fit, the minimums.
    """
    natural = list(natural)
    minimum = [min(m, n) for m, n in zip(minimum, natural)]
    if sum(natural) <= total:
        return natural
    if sum(minimum) >= total:
        return minimum
    low, high = 0, max(natural)
    while low < high:  # the largest cap that fits
        middle = (low + high + 1) // 2
        if sum(max(m, min(n, middle)) for n, m in zip(natural, minimum)) <= total:
            low = middle
        else:
            high = middle - 1
    widths = [max(m, min(n, low)) for n, m in zip(natural, minimum)]
    spare = total - sum(widths)
    for i, n in enumerate(natural):  # what the cap left over goes to the first cut columns
        if spare and widths[i] < n:
            widths[i] += 1
            spare -= 1
    return widths


def clip_path(path: str, width: int | None, separator: str = ".") -> str:
    """A dotted path in ``width`` columns: every segment kept, the longest shortened inside.

    Falls back to :func:`clip` when even two characters a segment do not fit.
    """
    if width is None or len(path) <= width:
        return path
    segments = path.split(separator)
    room = width - len(separator) * (len(segments) - 1)
    widths = shrink_widths([len(s) for s in segments], [2] * len(segments), room)
    if sum(widths) > room:
        return clip(path, width)
    return separator.join(s if len(s) <= w else s[: w - 1] + ELLIPSIS for s, w in zip(segments, widths))


def clip_word(word: str, width: int | None) -> str:
    """One word in ``width`` columns: a path (``a.b.c``) by :func:`clip_path`, else :func:`clip`.
    """
    if width is None or len(word) <= width:
        return word
    if "." in word.strip(".,;:()[]'\""):
        return clip_path(word, width)
    return clip(word, width)


def glue(text: str) -> str:
    """``text`` with spaces :func:`wrap` never breaks at (it writes them back as spaces).

    For an item that reads as one: ``(SwitchLinear [2, 16, 8])``.
    """
    return text.replace(" ", _GLUE)


def wrap(text: str, width: int | None, indent: str = "", subsequent_indent: str | None = None) -> list[str]:
    """``text`` broken into lines of at most ``width`` columns, between words only.

    Line breaks already in ``text`` are kept; a line that fits is left as it is
    (its spacing too). Only spaces break a line (not the ones :func:`glue`
    put). A word wider than a whole line is shortened inside
    (:func:`clip_word`) rather than split.

    Args:
        text (str): The message.
        width (int | None): Columns; ``None``: no limit.
        indent (str, optional): Put before the first line. Default: ``""``.
        subsequent_indent (str | None, optional): Put before the others.
            Default: ``indent``.
    """
    later = indent if subsequent_indent is None else subsequent_indent
    lines: list[str] = []
    for paragraph in text.split("\n"):
        first = indent if not lines else later
        lines += _wrap_line(paragraph, width, first, later)
    return [line.replace(_GLUE, " ") for line in lines]


def _wrap_line(text: str, width: int | None, first: str, later: str) -> list[str]:
    if width is None or len(first) + len(text) <= width:
        return [(first + text).rstrip()]
    lines: list[str] = []
    line, gap = first, ""  # the spacing met before the next word
    fresh = True  # nothing but the indent on this line yet
    for token in _TOKENS.findall(text):
        if token[0] == " ":
            gap = token if not fresh else ""
            continue
        if not fresh and len(line) + len(gap) + len(token) > width:
            lines.append(line.rstrip())
            line, gap, fresh = later, "", True
        if fresh:
            line += clip_word(token, max(1, width - len(line)))
        else:
            line += gap + token
        fresh, gap = False, ""
    lines.append(line.rstrip())
    return lines


def wrap_lines(lines: Iterable[str], width: int | None, hanging: int = 2) -> list[str]:
    """Each line wrapped between words; its continuation lines indented ``hanging``
    columns past its own indentation.
    """
    out: list[str] = []
    for line in lines:
        indent = line[: len(line) - len(line.lstrip(" "))]
        out += wrap(line[len(indent):], width, indent, indent + " " * hanging)
    return out


def describe_paths(paths: Sequence[str], limit: int = 8) -> str:
    """Paths quoted and joined for a message, the tail counted rather than listed.
    """
    shown = ", ".join(repr(p) for p in paths[:limit])
    return shown if len(paths) <= limit else f"{shown} and {len(paths) - limit} more"
