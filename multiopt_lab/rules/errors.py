"""The error every rule problem raises: parse, type and evaluation failures.

``RuleError`` lives in its own module so the parser, the evaluator and
``rules.py`` can all raise it without importing each other; import it from
``multiopt_lab.rules`` (or ``multiopt_lab``).

Example:
    >>> err = RuleError("unknown name 'ndims'; did you mean 'ndim'?", "ndims == 2", 0)
    >>> print(err)
    unknown name 'ndims'; did you mean 'ndim'?
      ndims == 2
      ^
"""

from __future__ import annotations

__all__ = ["RuleError"]


class RuleError(ValueError):
    """A rule expression that cannot be parsed, or a rule that failed on a parameter.

    Attributes:
        message (str): What was expected and what was found.
        text (str | None): The rule's text (None for a Python callable).
        column (int | None): 0-based character offset into ``text`` where the
            problem starts, or None when it has no single position.
        path (str | None): The parameter the rule failed on, for failures
            while applying a rule; None for parse errors.

    Example:
        >>> RuleError("expected a string", 'glob(embed)', 5).column
        5
    """

    def __init__(
        self,
        message: str,
        text: str | None = None,
        column: int | None = None,
        path: str | None = None,
    ):
        self.message = message
        self.text = text
        self.column = column
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        if self.text is None:
            return self.message
        if self.column is None:
            return f"{self.message}\n  {self.text}"
        # Show only the line holding the column (rule files may wrap a rule).
        start = self.text.rfind("\n", 0, self.column) + 1
        end = self.text.find("\n", self.column)
        line = self.text[start : len(self.text) if end < 0 else end]
        caret = " " * (self.column - start) + "^"
        return f"{self.message}\n  {line}\n  {caret}"

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self):
        return (type(self), (self.message, self.text, self.column, self.path))
