"""The rules of a partition written out as Python code or as TOML, to paste elsewhere.

Rule expressions travel as strings; a Python callable cannot be written as
data, so it appears by name (Python: a bare name to define; TOML: a
``callable`` key the reader must resolve).

Example:
    >>> print(rules_python(["muon", "adamw"], ["ndim == 2"]))
    # First match wins; the last group ('adamw') is the fallback.
    labels = ['muon', 'adamw']
    filters = [
        'ndim == 2',  # muon
    ]
    # optimizer = MultiOptimizer(optimizers, filters, labels=labels)
    # or, live: optimizer.repartition(filters, model.trainable_parameters(), labels=labels)
"""

from __future__ import annotations

from collections.abc import Sequence

import tomli_w

__all__ = ["rules_python", "rules_toml"]


def _callable_name(rule) -> str:
    function = getattr(rule, "function", None) or rule
    return getattr(function, "__name__", None) or type(function).__name__


def _text(rule) -> str | None:
    """A rule's expression text; None for a Python callable."""
    if isinstance(rule, str):
        return rule
    return getattr(rule, "text", None)


def _check(labels: Sequence[str], rules: Sequence) -> None:
    if len(rules) != len(labels) - 1:
        raise ValueError(
            f"Expected {len(labels) - 1} rules for {len(labels)} groups (the last group is the "
            f"fallback and has none), found {len(rules)}."
        )


def rules_python(labels: Sequence[str], rules: Sequence, optimizers: Sequence | None = None) -> str:
    """Python lines defining ``labels`` and ``filters`` for a ``MultiOptimizer``.

    Args:
        labels (Sequence[str]): Group labels, fallback last.
        rules (Sequence[Rule | str | Callable]): One rule per group but the fallback.
        optimizers (Sequence[str] | None, optional): Descriptions of each group's
            optimizer, written as comments. Default: ``None``.

    Example:
        >>> "filters = [" in rules_python(["a", "b"], ["ndim == 1"])
        True
    """
    _check(labels, rules)
    lines = [f"# First match wins; the last group ({labels[-1]!r}) is the fallback."]
    if optimizers:
        lines += [f"# {label}: {description}" for label, description in zip(labels, optimizers)]
    lines.append(f"labels = {list(labels)!r}")
    lines.append("filters = [")
    for label, rule in zip(labels, rules):
        text = _text(rule)
        if text is None:
            lines.append(f"    {_callable_name(rule)},  # {label}: a Python callable, define it above")
        else:
            lines.append(f"    {text!r},  # {label}")
    lines.append("]")
    lines.append("# optimizer = MultiOptimizer(optimizers, filters, labels=labels)")
    lines.append("# or, live: optimizer.repartition(filters, model.trainable_parameters(), labels=labels)")
    return "\n".join(lines)


def rules_toml(labels: Sequence[str], rules: Sequence, optimizers: Sequence[str] | None = None) -> str:
    """A TOML document with one ``[[groups]]`` table per group, fallback last.

    Each table has ``label``, ``rule`` (absent for the fallback; a callable
    gives ``callable = "<name>"`` instead) and, when known, ``optimizer``.

    Args:
        labels (Sequence[str]): Group labels, fallback last.
        rules (Sequence[Rule | str | Callable]): One rule per group but the fallback.
        optimizers (Sequence[str] | None, optional): Optimizer descriptions. Default: ``None``.

    Example:
        >>> print(rules_toml(["muon", "adamw"], ["ndim == 2"]))
        # First match wins; the last group is the fallback.
        [[groups]]
        label = "muon"
        rule = "ndim == 2"
        <BLANKLINE>
        [[groups]]
        label = "adamw"
        <BLANKLINE>
    """
    _check(labels, rules)
    groups = []
    for i, label in enumerate(labels):
        group = {"label": label}
        if i < len(rules):
            text = _text(rules[i])
            if text is None:
                group["callable"] = _callable_name(rules[i])
            else:
                group["rule"] = text
        if optimizers:
            group["optimizer"] = optimizers[i]
        groups.append(group)
    # One [[groups]] table per group reads better than the inline array tomli-w
    # writes for a list of tables; tomli-w still does all the quoting.
    tables = ["[[groups]]\n" + tomli_w.dumps(group) for group in groups]
    return "# First match wins; the last group is the fallback.\n" + "\n".join(tables)
