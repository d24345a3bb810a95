"""The :class:`Rule` object: an expression rule or a wrapped callable, and :func:`as_rule`.

Import these from :mod:`multiopt_lab._src.rules` (or ``multiopt_lab``).
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import numpy as np

from multiopt_lab._src.rules.callables import CallableRule
from multiopt_lab._src.rules.features import features_of
from multiopt_lab._src.rules.errors import RuleError
from multiopt_lab._src.rules.nodes import EvaluationFailure, Node
from multiopt_lab._src.rules.parser import compile_rule
from multiopt_lab._src.rules.text import MODULE_NAMES, needs_model_message, operand_text

__all__ = ["Rule", "as_rule"]


class Rule:
    """A predicate on one parameter: a rule expression or a wrapped callable.

    Build one with :func:`rule` (text), :func:`as_rule` (anything accepted as
    a filter) or the factories :func:`by_glob`, :func:`by_regex`,
    :func:`by_ndim`. Combine with ``&``, ``|`` and ``~``.

    Attributes:
        text (str | None): The expression, or None for a Python callable.
        label (str | None): Optional group label.
        names (frozenset[str] | None): Features the rule reads (None: a
            callable, which may read anything).
        needs_model (bool): The rule reads ``module`` or ``modules`` (or calls
            ``within``): it runs only where the model is at hand.
        module_literals (frozenset[str]): Class names the rule compares
            ``module``/``modules`` with, or gives to ``within``.
        depends_on_values (bool): True for callables not declared structural:
            their result may change when the values change.

    Example:
        >>> (Rule("ndim == 2") & ~Rule('glob("*embed*")')).text
        'ndim == 2 and not glob("*embed*")'
    """

    __slots__ = ("text", "label", "names", "depends_on_values", "_root", "_callable", "_key")

    def __init__(self, text: str | None = None, label: str | None = None, *,
                 _root: Node | None = None, _callable: CallableRule | None = None):
        __tracebackhide__ = True  # IPython and pytest: the error is about the caller's text
        if label is not None and not isinstance(label, str):
            raise TypeError(f"a rule's label must be a str or None, got {type(label).__name__}")
        self.text, self.label = text, label
        self._callable = _callable
        self._key: tuple[str, Any]
        if _callable is not None:
            self.names, self.depends_on_values = None, not _callable.structural
            self._root, self._key = None, ("callable", _callable.function)
        else:
            if _root is None:
                try:
                    _root = compile_rule(text)
                except RuleError as err:
                    # Raised afresh here: the parser's own frames say nothing to the user.
                    raise err.with_traceback(None) from None
            self._root = _root
            self.names, self.depends_on_values = self._root.names, False
            # Whitespace-only edits keep the cache key (and cached selections).
            self._key = ("expression", self._root.canonical)

    @property
    def needs_model(self) -> bool:
        """True when the rule reads ``module``/``modules``: it needs the model, not a dict.

        Example:
            >>> Rule('module == "Linear"').needs_model, Rule("ndim == 2").needs_model
            (True, False)
        """
        return bool(self.names and self.names & MODULE_NAMES)

    @property
    def module_literals(self) -> frozenset:
        """Class names the rule mentions for ``module``/``modules``/``within``.

        Example:
            >>> sorted(Rule('module in ("Linear", "Conv2d") and within("Block")').module_literals)
            ['Block', 'Conv2d', 'Linear']
        """
        return getattr(self._root, "module_literals", frozenset())

    def _needs_model_error(self) -> RuleError:
        return RuleError(needs_model_message(self.names), self.text,
                         getattr(self._root, "module_column", None))

    @property
    def cache_key(self) -> tuple:
        """A hashable identifying what the rule computes (label ignored)."""
        return self._key

    @property
    def function(self) -> Callable[[str, Any], Any] | None:
        """The wrapped Python callable, or None for an expression rule."""
        return None if self._callable is None else self._callable.function

    def __call__(self, path: str, array: Any) -> bool:
        if self._callable is not None:
            return self._callable.call(path, array, self.text)
        if self.needs_model:
            raise self._needs_model_error()
        try:
            return bool(self._root.row(features_of(path, array, self.names)))  # type: ignore[union-attr]  # set without a callable
        except EvaluationFailure as err:
            raise _failure(self.text, err, features_of(path, array)) from None
        except Exception as err:
            raise RuleError(f"rule failed on {path!r}: {err}", self.text, None, path) from None

    def select(self, table, rows: np.ndarray | None = None) -> np.ndarray:
        """Evaluate on every row of a ``ParameterTable`` (or only ``rows``).

        Returns:
            numpy.ndarray: One bool per selected row.

        Example:
            >>> import mlx.core as mx
            >>> from multiopt_lab import ParameterTable
            >>> t = ParameterTable.from_tree({"w": mx.zeros((2, 2)), "b": mx.zeros((2,))})
            >>> Rule("ndim == 2").select(t).tolist()
            [True, False]
        """
        rows = np.arange(len(table)) if rows is None else np.asarray(rows, dtype=np.intp)
        if self._callable is not None:
            return self._callable.select(table, rows, self.text)
        if self.needs_model and not getattr(table, "has_modules", False):
            raise self._needs_model_error()
        try:
            return self._root.mask(table, rows)  # type: ignore[union-attr]  # set without a callable
        except Exception:
            pass  # Find the first failing row with plain per-row semantics.
        for i in rows.tolist():
            self(table.paths[i], table.arrays[i])
        raise RuntimeError("bulk evaluation failed but no row does; please report this rule: "
                           f"{self.text!r}")

    def with_label(self, label: str | None) -> Rule:
        """The same rule under another label.

        Example:
            >>> Rule("ndim == 1").with_label("adamw").label
            'adamw'
        """
        if self._callable is not None:
            return Rule(None, label, _callable=self._callable)
        return Rule(self.text, label, _root=self._root)

    def _combine(self, other: Any, word: str) -> Rule:
        other = as_rule(other)
        if self.text is not None and other.text is not None:
            return Rule(f"{operand_text(self.text, word)} {word} {operand_text(other.text, word)}")
        return Rule(None, _callable=CallableRule.combine(self, other, word))

    def __and__(self, other: Any) -> Rule:
        return self._combine(other, "and")

    def __rand__(self, other: Any) -> Rule:
        return as_rule(other)._combine(self, "and")

    def __or__(self, other: Any) -> Rule:
        return self._combine(other, "or")

    def __ror__(self, other: Any) -> Rule:
        return as_rule(other)._combine(self, "or")

    def __invert__(self) -> Rule:
        if self.text is None:
            return Rule(None, _callable=CallableRule.negate(self))
        return Rule(f"not {operand_text(self.text, 'not')}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rule):
            return NotImplemented
        if self.text is not None or other.text is not None:
            return self.text == other.text
        return self.function is other.function

    def __hash__(self) -> int:
        return hash(self.text) if self.text is not None else hash(("callable", id(self.function)))

    def __repr__(self) -> str:
        label = "" if self.label is None else f", label={self.label!r}"
        if self.text is not None:
            return f"Rule({self.text!r}{label})"
        return f"Rule({self._callable.describe()}{label})"  # type: ignore[union-attr]  # no text: a callable

    def describe(self) -> str:
        """One-line description: the text, or the callable's name."""
        return self.text if self.text is not None else self._callable.describe()  # type: ignore[union-attr]  # no text: a callable


def _failure(text: str | None, err: EvaluationFailure, features: tuple) -> RuleError:
    path, _, _, shape, _, dtype = features
    return RuleError(f"rule failed on {path!r} (shape {shape}, {dtype}): {err.message}",
                     text, err.column, path)


def as_rule(filter: Any, label: str | None = None, *, structural: bool | None = None) -> Rule:
    """Turn anything accepted as a filter into a :class:`Rule`.

    Args:
        filter: A rule string, a ``Rule`` (returned as is, unless ``label`` is
            given) or a callable ``(path, array) -> bool``.
        label (str, optional): Label for the result. Default: ``None``.
        structural (bool, optional): For callables: declare that the result
            depends only on path, shape and dtype, so it may be cached. Also
            read from a ``structural = True`` attribute on the callable.

    Example:
        >>> as_rule(lambda path, array: path.endswith("bias")).text is None
        True
    """
    __tracebackhide__ = True
    if isinstance(filter, Rule):
        return filter if label is None else filter.with_label(label)
    if isinstance(filter, str):
        try:
            return Rule(filter, label)
        except RuleError as err:
            raise err.with_traceback(None) from None
    if callable(filter):
        return Rule(None, label, _callable=CallableRule(filter, structural))
    raise TypeError(f"expected a rule string, a Rule or a callable (path, array) -> bool, "
                    f"got {type(filter).__name__}: {filter!r}")
