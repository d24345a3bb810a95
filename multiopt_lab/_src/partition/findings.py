"""A finding: one thing an assignment reveals, worded once for every surface.

Each :class:`Finding` has a ``kind``, a ``severity`` (``"error"``,
``"warning"`` or ``"note"``), the ``paths`` it concerns (the parameters
likely wrong), the ``group`` they sit in (or whose rule it is about), a
``message``, a ``hint`` (the fix) and a short ``title`` for a row or a cell.
The tree, the legend, the editor, ``check()``, ``CoverageError``, the command
line and the warnings at training time all draw these words; this module is
the only place that writes them.

Kinds, by severity:

* errors: ``dead_rule`` (matches no parameter), ``shadowed_rule`` (earlier
  rules took all it matches), ``too_few_dims`` (an optimizer that needs
  matrices holds a vector: MLX's ``Muon`` runs momentum SGD on it);
* warnings: ``near_miss`` (the fallback took parameters that look like what a
  rule took), ``empty_group`` (the fallback takes nothing), ``flattened_stack`` (MLX's ``Muon`` holds a 3-D stack of
  matrices and mixes them), ``embedding_or_head`` (Muon holds an embedding or
  the output head, against its authors' advice);
* notes: ``overlap`` (a parameter several rules match: the first wins, as
  MLX's ``MultiOptimizer`` does), ``weight_decay`` (an optimizer decays
  norms, biases or embeddings).
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

from multiopt_lab._src.partition.near_misses import block_pattern

__all__ = ["Finding", "FindingWarning", "SEVERITIES", "KINDS", "CONTRACTS_UNCHECKED", "listed_paths",
           "counted", "by_block", "wrapped", "wrap_words", "MESSAGE_WIDTH"]

#: From the most to the least severe.
SEVERITIES = ("error", "warning", "note")

#: Every kind of finding, in the order the text form lists them (``fallback_only`` is
#: information, in ``Diagnostics.fallback_only``; ``check(allow_fallback=False)`` fails on it).
KINDS = ("dead_rule", "shadowed_rule", "too_few_dims", "near_miss", "empty_group",
         "flattened_stack", "embedding_or_head", "overlap", "weight_decay", "fallback_only")

#: Said where the optimizers were not known, so that no finding about them could be.
CONTRACTS_UNCHECKED = "no optimizers given: their contracts were not checked"

_WIDTH = 88
#: The widest a finding's message is wrapped to in the text forms (a readable measure).
MESSAGE_WIDTH = _WIDTH
_MAX_LISTED = 50
# The same parameter in this many numbered blocks or more is listed once: layers.*.norm.weight.
_FOLD = 3


@dataclass(frozen=True)
class Finding:
    """One thing an assignment reveals (see the module docstring for the kinds).

    Attributes:
        kind (str): What was found (``"too_few_dims"``, ``"near_miss"``...).
        severity (str): ``"error"``, ``"warning"`` or ``"note"``.
        paths (tuple[str, ...]): The parameters it concerns, the likely wrong
            ones, in parameter order (empty for a rule that matches nothing).
        group (str): The group those parameters sit in, or whose rule it is about.
        message (str): What is wrong, naming the optimizer and what MLX will do.
        hint (str): The fix: a rule edit, another optimizer class.
        title (str): A few words for a tree row or a legend cell.

    Example:
        >>> Finding("overlap", "note", ("w",), "a", "...", "...", "overlap").key
        ('overlap', 'note', 'a', ('w',))
    """

    kind: str
    severity: str
    paths: tuple[str, ...]
    group: str
    message: str
    hint: str
    title: str

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"expected a severity in {SEVERITIES}, found {self.severity!r}")

    @cached_property
    def blocks(self) -> tuple[str, ...]:
        """:attr:`paths`, those repeated in every numbered block folded
        (``layers.*.norm.weight (in 32 blocks)``): worked out once, read by every surface.

        Example:
            >>> Finding("overlap", "note", ("l.0.w", "l.1.w", "l.2.w"), "a", "m", "h", "t").blocks
            ('l.*.w (in 3 blocks)',)
        """
        return tuple(by_block(self.paths))

    @cached_property
    def path_set(self) -> frozenset[str]:
        """:attr:`paths` as a set, for asking whether it concerns one parameter.

        Example:
            >>> "w" in Finding("overlap", "note", ("w",), "a", "m", "h", "t").path_set
            True
        """
        return frozenset(self.paths)

    @property
    def key(self) -> tuple:
        """``(kind, severity, group, paths)``: what identifies a finding, whatever the rules' wording.

        Example:
            >>> Finding("empty_group", "note", (), "adamw", "m", "h", "t").key
            ('empty_group', 'note', 'adamw', ())
        """
        return (self.kind, self.severity, self.group, self.paths)

    @property
    def flagged(self) -> bool:
        """An error or a warning: a likely mistake (a note is information).

        Example:
            >>> Finding("weight_decay", "note", (), "adamw", "m", "h", "t").flagged
            False
        """
        return self.severity != "note"

    def text(self, indent: str = "", max_paths: int = _MAX_LISTED, because: str = "",
             width: int | None = _WIDTH) -> str:
        """The finding in words: severity and message, the paths (repeated blocks folded), the fix.

        Args:
            indent (str, optional): Put before every line. Default: ``""``.
            max_paths (int, optional): Paths (or folded rows) listed before
                "... and N more". Default: ``50``.
            because (str, optional): Why it matters here, after the severity
                (``"allow_overlap=False"``). Default: ``""``.
            width (int | None, optional): Break lines between words (a path, a
                shape or a piece of rule is never broken) at this many columns;
                ``None``: the message, the paths and the fix on a line each.
                Default: ``88``.

        Example:
            >>> f = Finding("overlap", "note", ("layers.0.w", "layers.1.w", "layers.2.w"), "a",
            ...             "3 parameters 'a' took are also matched by 'b'", "reorder", "overlap")
            >>> print(f.text())
            note: 3 parameters 'a' took are also matched by 'b'
              layers.*.w (in 3 blocks)
              fix: reorder
        """
        severity = f"{self.severity} ({because})" if because else self.severity
        lines = _wrap(f"{severity}: {self.message}", indent, indent + "  ", width)
        if self.paths:
            lines += wrapped(self.blocks, indent + "    ", max_paths, width)
        if self.hint:
            lines += _wrap(f"fix: {self.hint}", indent + "  ", indent + "    ", width)
        return "\n".join(lines)

    def line(self, shown: int = 3) -> str:
        """The finding on one line: severity, message, a few paths, the fix.

        Example:
            >>> Finding("empty_group", "note", (), "adamw", "the fallback takes nothing", "", "empty").line()
            'note: the fallback takes nothing'
        """
        text = f"{self.severity}: {self.message}"
        if self.paths:
            text += f": {_listed(self.blocks, shown)}"
        return text + (f"; fix: {self.hint}" if self.hint else "")

    def brief(self, shown: int = 2) -> str:
        """Severity, title, a few paths and the fix: for a line beside a rule being typed.

        Example:
            >>> Finding("near_miss", "warning", ("a",), "adamw", "m", "widen it", "near miss of muon").brief()
            'warning: near miss of muon (1): a; fix: widen it'
        """
        text = f"{self.severity}: {self.short()}"
        if self.paths:
            text += f": {_listed(self.blocks, shown)}"
        return text + (f"; fix: {self.hint}" if self.hint else "")

    def short(self) -> str:
        """The title, with the number of parameters concerned: for a cell or a row.

        Example:
            >>> Finding("near_miss", "warning", ("a", "b"), "adamw", "m", "h", "near miss of muon").short()
            'near miss of muon (2)'
        """
        return f"{self.title} ({len(self.paths):,})" if self.paths else self.title

    def __str__(self) -> str:
        return self.text()


class FindingWarning(UserWarning):
    """A finding of severity error or warning, reported as a Python warning.

    ``train()``, the mlx-lm ``LabCallback`` and a ``MultiOptimizer``'s first
    update warn once per such finding (``warn_findings=False`` turns it
    off); ``check()`` warns for the warnings it lets pass. The finding is in
    ``.finding``.

    Example:
        >>> f = Finding("near_miss", "warning", ("x",), "adamw", "m", "h", "t")
        >>> FindingWarning(f).finding is f, str(FindingWarning(f)).splitlines()[0]
        (True, 'warning: m')
    """

    def __init__(self, finding: Finding):
        super().__init__(finding.text(max_paths=10))
        self.finding = finding


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 parameter"``, ``"3 parameters"``.
    """
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def listed_paths(paths, shown: int = 3) -> str:
    """``a, b, c and 4 more``: a few paths (repeated blocks folded) for one line.
    """
    return _listed(by_block(paths), shown)


def _listed(items, shown: int) -> str:
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" and {more:,} more" if more > 0 else "")


_T = TypeVar("_T")


def _folded(items: Iterable[_T], pattern_of) -> list[tuple[_T, int]]:
    """``(item, count)`` in order; an item repeated in ``_FOLD`` or more blocks appears once."""
    items = list(items)
    patterns = [pattern_of(item) for item in items]  # once each: tens of thousands of paths
    counts = Counter(patterns)
    out, seen = [], set()
    for item, pattern in zip(items, patterns):
        if counts[pattern] < _FOLD:
            out.append((item, 1))
        elif pattern not in seen:
            seen.add(pattern)
            out.append((item, counts[pattern]))
    return out


# A path's block pattern, kept: the editor recomputes findings on every keystroke over the
# same paths. Bounded, so that a long session over many models does not grow without end.
_PATTERNS: dict[str, str] = {}
_MAX_PATTERNS = 1 << 18


def _block_pattern(path: str) -> str:
    pattern = _PATTERNS.get(path)
    if pattern is None:
        if len(_PATTERNS) >= _MAX_PATTERNS:
            _PATTERNS.clear()
        pattern = _PATTERNS[path] = block_pattern(path)
    return pattern


def by_block(paths) -> list[str]:
    """Paths, those repeated in every numbered block folded: ``layers.*.norm.weight (in 32 blocks)``.
    """
    return [path if n == 1 else f"{_block_pattern(path)} (in {n:,} blocks)"
            for path, n in _folded(paths, _block_pattern)]


# Never broken across lines: a shape ``[4, 32, 64]``, a piece of rule in backquotes.
_UNBROKEN = re.compile(r"\[[^\]\n]*\]|`[^`\n]*`")


def _wrap(text: str, first: str, rest: str, width: int | None = _WIDTH) -> list[str]:
    if width is None:
        return [first + text]
    glued = _UNBROKEN.sub(lambda m: m.group(0).replace(" ", "\u00a0"), text)
    lines = textwrap.wrap(glued, width, initial_indent=first, subsequent_indent=rest,
                          break_long_words=False, break_on_hyphens=False)
    return [line.replace("\u00a0", " ") for line in lines]


def wrap_words(text: str, first: str, rest: str, width: int | None = _WIDTH) -> list[str]:
    """``text`` broken between words (a shape or a piece of rule in backquotes kept whole)
    into lines of ``width`` columns, the first indented by ``first``, the others by ``rest``.
    """
    return _wrap(text, first, rest, width)


def wrapped(items, indent: str, max_items: int = _MAX_LISTED, width: int | None = _WIDTH) -> list[str]:
    """Items joined by commas, wrapped between items (an item is never broken) in lines of
    ``width`` columns (``None``: one line), cut after ``max_items`` with "... and N more".
    """
    items = list(items)
    shown = ", ".join(item.replace(" ", "\u00a0") for item in items[:max_items])  # no break inside
    more = len(items) - max_items
    shown += f", ... and {more:,} more" if more > 0 else ""
    if width is None:
        return [indent + shown.replace("\u00a0", " ")]
    lines = textwrap.wrap(shown, width, initial_indent=indent, subsequent_indent=indent,
                          break_long_words=False, break_on_hyphens=False)
    return [line.replace("\u00a0", " ") for line in lines]


# -- the words of each kind ----------------------------------------------------------------
def _quoted(labels) -> str:
    return ", ".join(repr(label) for label in labels)


def _are(n: int) -> str:
    return "is" if n == 1 else "are"


def dead_rule(label: str, rule: str, about_modules: str = "") -> Finding:
    """A rule that matches no parameter (``about_modules``: what the model's module classes
    say about the classes the rule names)."""
    hint = about_modules or ("compare it with the parameters' paths, shapes and module classes "
                             "(assignment.to_frame()), or remove the group")
    return Finding("dead_rule", "error", (), label, f"rule {label!r} ({rule}) matches no parameter",
                   hint, "dead rule: matches nothing")


def shadowed_rule(label: str, rule: str, matched: int, takers) -> Finding:
    """A rule that matches parameters, every one of them taken by the earlier rules ``takers``."""
    takers = list(takers)
    return Finding(
        "shadowed_rule", "error", (), label,
        f"rule {label!r} ({rule}) is shadowed: the {counted(matched, 'parameter')} it matches "
        f"{'is' if matched == 1 else 'are all'} taken by earlier rules ({_quoted(takers)}); the "
        "first match wins",
        f"move {label!r} before {takers[0]!r}, or narrow the earlier rule",
        "shadowed: earlier rules took all it matches")


def empty_group(label: str) -> Finding:
    """The fallback takes nothing (a group with a rule is empty only when it is dead or shadowed)."""
    return Finding("empty_group", "warning", (), label,
                   f"the fallback {label!r} takes no parameter: the rules take them all, and its "
                   "optimizer only counts steps",
                   "narrow a rule if some parameters belong to the fallback (a LoRA model's "
                   "matrices all 2-D?), or drop the group", "empty group")


def overlap(winner: str, paths, later) -> Finding:
    """Parameters ``winner`` took that later rules (``later``) also match."""
    n = len(paths)
    return Finding(
        "overlap", "note", tuple(paths), winner,
        f"{counted(n, 'parameter')} that {winner!r} took {_are(n)} also matched by later rules "
        f"({_quoted(later)}); the first match wins, as in MLX's MultiOptimizer",
        "reorder or narrow the rules if a later one should take them",
        "also matched by later rules")


def near_miss(fallback: str, rule: str, paths, forms, suggestion: str) -> Finding:
    """Parameters the fallback took that look like what ``rule`` took, in another form.

    ``forms``: ``(their form, the form rule took)`` pairs such as ``("SwitchLinear [4, 8, 8]",
    "Linear [8, 8]")``; ``suggestion``: a condition that would take them (``module ==
    "SwitchLinear"``).
    """
    n = len(paths)
    shown = "; ".join(f"{mine} where {rule!r} took {theirs}" for mine, theirs in forms[:2])
    return Finding(
        "near_miss", "warning", tuple(paths), fallback,
        f"the fallback {fallback!r} took {counted(n, 'parameter')} that {'looks' if n == 1 else 'look'} like what {rule!r} "
        f"took (the same name and kind of layer, in the same block) in another form: {shown}",
        f"add `or {suggestion}` to the rule of {rule!r} if they belong with what it took; if "
        f"they belong to {fallback!r}, the split is as intended",
        f"near miss of {rule}")


def too_few_dims(label: str, optimizer: str, min_ndim: int, does: str, paths,
                 fallback: str | None) -> Finding:
    """An optimizer that expects ``min_ndim`` dimensions holds smaller parameters.

    ``does``: what it does with them instead; ``fallback``: the fallback's label,
    None when ``label`` is the fallback itself.
    """
    n = len(paths)
    does = does or "does not do what it is made for"
    if fallback is not None:
        hint = (f"add `and ndim >= {min_ndim}` to the rule of {label!r}, so that the fallback "
                f"{fallback!r} takes them")
    else:
        hint = (f"give them a group of their own before the fallback {label!r}, with the rule "
                f"`ndim < {min_ndim}` and an optimizer for any shape (AdamW)")
    return Finding(
        "too_few_dims", "error", tuple(paths), label,
        f"{optimizer} (group {label!r}) takes {counted(n, 'parameter')} with fewer than "
        f"{min_ndim} dimensions, and {does}",
        hint, f"{optimizer} below {min_ndim}-D")


def flattened_stack(label: str, optimizer: str, paths, example: str, fix: str) -> Finding:
    """An optimizer that treats a stack of matrices as one matrix holds stacks."""
    n = len(paths)
    return Finding(
        "flattened_stack", "warning", tuple(paths), label,
        f"{optimizer} (group {label!r}) takes {counted(n, 'stack')} of matrices ({example}), and "
        "orthogonalises each as one (stack, out * in) matrix, mixing the matrices of the stack "
        "(a mixture's experts, MLA's heads)",
        f"use {fix}" if fix else "use an optimizer that treats each matrix of a stack alone",
        f"{optimizer} mixes stacked matrices")


def embedding_or_head(label: str, optimizer: str, embeddings, heads, advice: str,
                      exclusion: str, fallback: str | None) -> Finding:
    """An optimizer meant for hidden layers holds embeddings (``embeddings``) or the output
    head (``heads``); ``exclusion``: a condition that leaves them out."""
    parts = []
    if embeddings:
        parts.append(("the embedding " if len(embeddings) == 1 else "the embeddings ")
                     + listed_paths(embeddings))
    if heads:
        parts.append("the output head " + listed_paths(heads))
    taker = f"the fallback {fallback!r}" if fallback is not None else "another group"
    return Finding(
        "embedding_or_head", "warning", tuple(sorted_like(embeddings, heads)), label,
        f"{optimizer} (group {label!r}) takes {' and '.join(parts)}: {advice or 'it is meant for hidden layers'}",
        f"add `and {exclusion}` to the rule of {label!r}, so that {taker} takes them"
        if fallback is not None else
        f"give them a group of their own before the fallback {label!r}, with AdamW",
        f"{optimizer} on " + ("embeddings and the head" if embeddings and heads else
                               "an embedding" if embeddings else "the output head"))


def sorted_like(*groups) -> list[str]:
    """The paths of several lists, each once, in the order given."""
    return list(dict.fromkeys(p for group in groups for p in group))


def weight_decay(label: str, optimizer: str, decay: float, paths, known_modules: bool) -> Finding:
    """An optimizer with weight decay holds norm scales, biases or embeddings."""
    n = len(paths)
    what = "norm scales, biases or embeddings" if known_modules else "vectors (norm scales, biases)"
    return Finding(
        "weight_decay", "note", tuple(paths), label,
        f"{optimizer} (group {label!r}, weight_decay={decay:g}) decays {counted(n, 'parameter')} "
        f"that {_are(n)} {what}; decay regularises weight matrices, but pulls a scale or a bias "
        "towards zero and shrinks the embeddings of rare tokens",
        "give them a group with weight_decay=0 (multiopt_lab.recipes.no_weight_decay builds "
        "one), or keep it if you mean it",
        f"weight decay {decay:g}")


def fallback_only(label: str, paths) -> Finding:
    """Parameters no rule matched, which the fallback took: MLX's design, information only
    (``check(allow_fallback=False)`` makes it a problem)."""
    n = len(paths)
    return Finding("fallback_only", "note", tuple(paths), label,
                   f"the fallback {label!r} took {counted(n, 'parameter')} no rule matched",
                   "give them a rule if every parameter must match one; a fallback taking "
                   "the rest is MLX's design", "fallback")
