"""Group labels: one per filter plus the fallback, unique, one line of text, never reserved.

Every place that takes labels (``assign``, ``MultiOptimizer``, ``repartition``,
``request_repartition``, rule files, recipes, ``History``) checks them here,
with the same rules and the same messages:

* a label is a non-empty ``str`` of printable text on one line: no control
  character (Unicode category ``Cc``: ``\\n``, ``\\r``, ``\\t``, NUL, ESC,
  ``\\x85``...), no line or paragraph separator (``U+2028``, ``U+2029``), no
  lone surrogate (``Cs``: it cannot be written to a file) and no
  bidirectional formatting character (``U+202A``-``U+202E``,
  ``U+2066``-``U+2069``, ``U+200E``, ``U+200F``, ``U+061C``), which make text
  display in another order than it runs ("Trojan Source"). Every character
  that ends a line for ``str.splitlines`` is among them;
* a label is none of :data:`RESERVED_LABELS`: ``"total"`` (the totals over all
  groups in the metrics) and ``"-"`` (a ``History``'s loss and other scalars);
* the labels of one partition are distinct.
"""

from __future__ import annotations

import unicodedata
from typing import Any
from collections.abc import Sequence

__all__ = ["TOTAL_LABEL", "SCALAR_LABEL", "RESERVED_LABELS", "check_labels", "check_label_text",
           "label_text_problem"]

#: The label of the totals over all groups (in ``MultiOptimizer.metrics`` and a
#: ``History``); no group may take it.
TOTAL_LABEL = "total"
#: The group of a ``History``'s loss and other scalars that belong to no
#: parameter group; no group may take it.
SCALAR_LABEL = "-"
#: Labels no group may take, and why.
RESERVED_LABELS = {
    TOTAL_LABEL: "the totals over all groups in the metrics",
    SCALAR_LABEL: "a History's loss and other scalars that belong to no group",
}

# Bidirectional formatting characters (category Cf): they reorder how text shows.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_REFUSED_CATEGORIES = {"Cc": "control character", "Zl": "line separator",
                       "Zp": "paragraph separator", "Cs": "lone surrogate"}
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def label_text_problem(text: str) -> tuple[int, str] | None:
    """``(position, what)`` of the first character a label may not hold, or None.

    Time is linear in the text: printable ASCII, the usual case, is checked
    in one C-level call.
    """
    if text.isascii() and text.isprintable():
        return None
    for position, char in enumerate(text):
        if char in _LINE_BREAKS:
            return position, "line break"
        what = _REFUSED_CATEGORIES.get(unicodedata.category(char))
        if what is not None:
            return position, what
        if char in _BIDI:
            return position, "bidirectional formatting character"
    return None


def check_label_text(text: Any, what: str = "group label") -> str:
    """``text`` when it may be a label (or a run or metric name): a ``str`` that is one
    line of printable text; else a TypeError or a ValueError saying which character.

    This is the character rule of every label; :func:`check_labels` adds
    the rules of a partition (non-empty, distinct, not reserved).

    Args:
        text: The candidate.
        what (str, optional): What it names, for the message. Default: ``"group label"``.
    """
    if not isinstance(text, str):
        raise TypeError(f"the {what} must be a str, found {type(text).__name__} {text!r:.60}")
    problem = label_text_problem(text)
    if problem is not None:
        position, kind = problem
        char = text[position]
        raise ValueError(
            f"the {what} {_shown(text)} holds a {kind} ({char!r} at position {position}, "
            f"U+{ord(char):04X}); a label must be one line of printable text (a line break or "
            "control character would break every file and text that shows it); remove it")
    return text


def _shown(text: str) -> str:
    # repr escapes control characters; a lone surrogate is shown escaped too.
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def check_labels(labels: Sequence[str] | None, n_filters: int) -> tuple[str, ...]:
    """Validate group labels (or make ``group_0 .. group_N``); one per filter plus the fallback.

    Raises:
        TypeError: When ``labels`` is one string instead of a sequence, or
            not a sequence at all.
        ValueError: On a wrong count, a label that is not a non-empty
            string of one line of printable text (:func:`check_label_text`),
            a repeat, or a reserved label (``"total"``, ``"-"``).
    """
    if labels is None:
        return tuple(f"group_{i}" for i in range(n_filters + 1))
    if isinstance(labels, str):
        raise TypeError(f"labels must be a list of strings, one per group, got the string "
                        f"{_shown(labels)}; write labels=[{_shown(labels)}, ...]")
    try:
        labels = tuple(labels)
    except TypeError:
        raise TypeError(f"labels must be a list of strings, one per group, got "
                        f"{type(labels).__name__} {labels!r:.60}") from None
    if len(labels) != n_filters + 1:
        raise ValueError(f"Given {n_filters} filters but {len(labels) - 1} needed: expected "
                         f"{n_filters + 1} labels (one per group), found {len(labels)}: "
                         f"{_listed(labels)}; the last group is the fallback, which takes no filter.")
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for label in labels:
        if not isinstance(label, str) or not label:
            raise ValueError(f"group labels must be non-empty strings (str), got {label!r:.60} "
                             f"({type(label).__name__}) in {_listed(labels)}")
        check_label_text(label)
        why = RESERVED_LABELS.get(label)
        if why is not None:
            raise ValueError(f"the label {label!r} is reserved for {why}; found it in "
                             f"{_listed(labels)}; pick another name")
        if label in seen:
            repeated[label] = None
        seen.add(label)
    if repeated:
        raise ValueError(f"expected distinct group labels, found labels that are not unique; "
                         f"{sorted(repeated)} appear more than once in {_listed(labels)}")
    return labels


def _listed(labels: tuple) -> str:
    """The labels for a message: all of a short list, the first 20 of a long one."""
    if len(labels) <= 20:
        return repr(list(labels))
    return repr(list(labels[:20]))[:-1] + f", ... ({len(labels)} in all)]"
