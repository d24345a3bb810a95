"""Rules: named predicates on one parameter, written in a small safe language.

A :class:`Rule` is callable as ``rule(path, array) -> bool``, so it plugs
straight into ``mlx.optimizers.MultiOptimizer`` as a filter. The language
(parsed with ``ast`` against a whitelist, never ``eval``-ed):

* names: ``path`` (dotted key), ``name`` (its last part), ``ndim``,
  ``shape`` (tuple), ``size``, ``dtype`` (e.g. ``"float32"``), and, when the
  model is at hand, ``module`` (class name of the module holding the
  parameter: ``"Linear"``, ``"Embedding"``, ``"RMSNorm"``, ``"SwitchLinear"``,
  a class of your own) and ``modules`` (the class names from the model down
  to that module, a tuple of strings);
* functions: ``glob(pattern)`` (fnmatch on the whole path, ``*`` crosses
  dots), ``regex(pattern)`` (a search on the path with RE2,
  linear in its length whatever the pattern) and
  ``within(class_name)`` (the parameter sits inside a module of that class,
  its holder included: ``class_name in modules``);
* literals: strings, ints, floats, True/False, tuples;
* operators: ``and or not == != < <= > >= in not in`` and indexing/slicing
  (``shape[-1]``, ``path[:6]``).

Types are checked while parsing (``ndim == "2"`` is refused with a caret);
text length, nesting and pattern sizes are bounded. Plain Python callables
``(path, array) -> bool`` are accepted wherever a rule is (:func:`as_rule`).
"""

from __future__ import annotations

from multiopt_lab._src.rules.errors import RuleError
from multiopt_lab._src.rules.rule import Rule, as_rule
from multiopt_lab._src.rules.text import quote_pattern

__all__ = ["Rule", "RuleError", "rule", "as_rule", "by_glob", "by_regex", "by_ndim"]


def rule(text: str, label: str | None = None) -> Rule:
    """Parse a rule expression.

    Args:
        text (str): The expression, e.g. ``'ndim == 2 and "lm_head" not in path'``.
        label (str, optional): A group label to carry along. Default: ``None``.

    Raises:
        RuleError: With the text and a caret under the offending column.

    Example:
        >>> rule("ndim == 1 or name == 'bias'", label="adamw")
        Rule("ndim == 1 or name == 'bias'", label='adamw')
        >>> rule('within("TransformerBlock") and module == "Linear"').needs_model
        True
    """
    __tracebackhide__ = True
    try:
        return Rule(text, label)
    except RuleError as err:
        # The traceback then ends here, at the user's call, not six frames into the parser.
        raise err.with_traceback(None) from None


def by_glob(pattern: str) -> Rule:
    """Rule matching paths by shell-style pattern (``*`` also crosses dots).

    Example:
        >>> by_glob("*.bias")
        Rule('glob("*.bias")')
    """
    return rule(f"glob({quote_pattern(pattern)})")


def by_regex(pattern: str) -> Rule:
    """Rule matching paths where ``re.search(pattern, path)`` finds something.

    Example:
        >>> by_regex(r"layers\\.[0-3]\\.").text
        'regex(r"layers\\\\.[0-3]\\\\.")'
    """
    return rule(f"regex({quote_pattern(pattern)})")


def by_ndim(ndim: int) -> Rule:
    """Rule matching parameters with ``ndim`` dimensions.

    Example:
        >>> by_ndim(1).text
        'ndim == 1'
    """
    if isinstance(ndim, bool) or not isinstance(ndim, int):
        raise TypeError(f"by_ndim expects an int, got {type(ndim).__name__}")
    return rule(f"ndim == {ndim}")
