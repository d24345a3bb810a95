"""The error every rule problem raises: parse, type and evaluation failures.

``RuleError`` lives in its own module so the parser, the evaluator and
``rules.py`` can all raise it without importing each other; import it from
``multiopt_lab._src.rules`` (or ``multiopt_lab``).
"""

from __future__ import annotations

from multiopt_lab._src.text_fit import DEFAULT_WIDTH, ELLIPSIS, wrap

__all__ = ["RuleError"]


def _around(line: str, column: int, width: int) -> tuple[str, int]:
    """At most ``width`` characters of ``line`` that show ``column``, cut ends marked with an
    ellipsis; and where ``column`` now is."""
    if len(line) <= width:
        return line, column
    start = min(max(0, column - width // 2), len(line) - width + 1)
    shown = line[start : start + width]
    if start > 0:
        shown = ELLIPSIS + shown[1:]
    if start + width < len(line):
        shown = shown[:-1] + ELLIPSIS
    return shown, column - start


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
        # Lines of at most DEFAULT_WIDTH columns, the first after "RuleError: ": a notebook
        # breaks a longer line at any character, inside a name.
        lead = len(type(self).__name__) + 2
        message = "\n".join(wrap(self.message, DEFAULT_WIDTH, " " * lead, ""))[lead:]
        if self.text is None:
            return message
        if self.column is None:
            return "\n".join([message, *wrap(self.text, DEFAULT_WIDTH, "  ", "    ")])
        # Show only the line holding the column (rule files may wrap a rule), and of a
        # long line only the part around the column.
        start = self.text.rfind("\n", 0, self.column) + 1
        end = self.text.find("\n", self.column)
        line = self.text[start : len(self.text) if end < 0 else end]
        line, column = _around(line, self.column - start, DEFAULT_WIDTH - 2)
        return f"{message}\n  {line}\n  {' ' * column}^"

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self):
        return (type(self), (self.message, self.text, self.column, self.path))
