"""An optimizer's rules written out to paste elsewhere: as Python code, or as its rule file.

The rule file (TOML or JSON) has one writer, :func:`multiopt_lab._src.optimizer_file.save_load.optimizer_file_text`
(what ``save_optimizer`` writes); :func:`export_text` hands it out as the
editor's "Copy as TOML". :func:`rules_python` writes Python: every label and
rule is a quoted string literal and nothing a user typed ever reaches a
comment, so whatever a label holds (a line break, a quote, code), the text
parses to the same assignments and calls nothing but the optimizers' classes
and schedules. A Python callable rule appears by its name when that name is
an identifier (define it above), else as ``None`` with a fixed comment.
"""

from __future__ import annotations

import keyword
from collections.abc import Sequence
from typing import Any, NamedTuple

from multiopt_lab._src.io.rulefile import RuleFileError, rule_file_text
from multiopt_lab._src.io.rulefile_data import groups_to_data
from multiopt_lab._src.optimizer_file.as_data import optimizer_to_data
from multiopt_lab._src.optimizer_file.classes import MLX_CLASSES
from multiopt_lab._src.optimizer_file.save_load import optimizer_file_text
from multiopt_lab._src.optimizer_file.schedules import SCALED

__all__ = ["rules_python", "export_text", "Export", "EXPORT_FORMS"]

#: The forms :func:`export_text` writes.
EXPORT_FORMS = ("python", "toml", "json")


def _callable_name(rule) -> str | None:
    """The name a callable rule goes by, when it is a plain identifier (never user text otherwise)."""
    function = getattr(rule, "function", None) or rule
    name = getattr(function, "__name__", None)
    if isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name):
        return name
    return None


def _text(rule) -> str | None:
    """A rule's expression text; None for a Python callable."""
    if isinstance(rule, str):
        return rule
    text = getattr(rule, "text", None)
    return text if isinstance(text, str) else None


def _check(labels: Sequence[str], rules: Sequence) -> None:
    if len(rules) != len(labels) - 1:
        raise ValueError(
            f"Expected {len(labels) - 1} rules for {len(labels)} groups (the last group is the "
            f"fallback and has none), found {len(rules)}."
        )


def _python_value(value: Any, imports: set[str]) -> str:
    """A described value (numbers, strings, lists, schedule tables) as a Python expression."""
    if isinstance(value, dict):
        name = value["schedule"]
        if name == SCALED:
            imports.add("from multiopt_lab._src.optimizer_file.schedules import ScaledSchedule")
            return (f"ScaledSchedule({_python_value(value['base'], imports)}, "
                    f"{_python_value(value['factor'], imports)})")
        arguments = ", ".join(f"{key}={_python_value(item, imports)}"
                              for key, item in value.items() if key != "schedule")
        return f"optim.{name}({arguments})"
    if isinstance(value, list):
        return "[" + ", ".join(_python_value(item, imports) for item in value) + "]"
    return repr(value)  # bool, int, finite float, str: repr is a literal that reads back exactly


def _is_module_name(name: Any) -> bool:
    """A dotted module path safe to write in an import (``__main__``, a notebook's, is not)."""
    return (isinstance(name, str) and name != "__main__"
            and all(part.isidentifier() and not keyword.iskeyword(part) for part in name.split(".")))


def _python_optimizer(optimizer: Any, imports: set[str]) -> str | None:
    """``optim.AdamW(learning_rate=..., ...)``, or None for an optimizer a file cannot describe."""
    try:
        data = optimizer_to_data(optimizer)
    except (ValueError, TypeError):
        return None
    name = data["class"]
    cls = type(optimizer)
    prefix = "optim." if MLX_CLASSES.get(name) is cls else ""
    if not prefix and name == cls.__qualname__ and _is_module_name(cls.__module__):
        imports.add(f"from {cls.__module__} import {name}")  # a registered class: import it
    arguments = ", ".join(f"{key}={_python_value(value, imports)}"
                          for key, value in data.items() if key != "class")
    return f"{prefix}{name}({arguments})"


def rules_python(labels: Sequence[str], rules: Sequence, optimizers: Sequence | None = None) -> str:
    """Python lines defining ``labels`` and ``filters`` (and, given the optimizers, the
    ``MultiOptimizer`` itself).

    Every label and rule is written as a string literal (``repr``), never in a
    comment, so the text parses to exactly these assignments whatever they hold.

    Args:
        labels (Sequence[str]): Group labels, fallback last.
        rules (Sequence[Rule | str | Callable]): One rule per group but the fallback.
        optimizers (Sequence[mlx.optimizers.Optimizer] | None, optional): Each group's
            optimizer: written as the code that builds it (its class and every
            argument, as :func:`multiopt_lab.save_optimizer` would), ``None``
            with a comment for one that cannot be. Default: ``None``.
    """
    _check(labels, rules)
    lines = [f"labels = {list(labels)!r}", "filters = ["]
    for i, rule in enumerate(rules):
        text = _text(rule)
        if text is not None:
            lines.append(f"    {text!r},  # labels[{i}]")
        elif _callable_name(rule) is not None:
            lines.append(f"    {_callable_name(rule)},  # labels[{i}]: a Python callable, define it above")
        else:
            lines.append(f"    None,  # labels[{i}]: a Python callable without a name; put it here")
    lines.append("]")
    head = ["# First match wins; the last group is the fallback."]
    if not optimizers:
        lines.append("# optimizer = MultiOptimizer(optimizers, filters, labels=labels)")
        lines.append("# or, live: optimizer.repartition(filters, model.trainable_parameters(), labels=labels)")
        return "\n".join(head + lines)
    imports = {"import mlx.optimizers as optim", "from multiopt_lab import MultiOptimizer"}
    lines.append("optimizers = [")
    for i, optimizer in enumerate(optimizers):
        code = _python_optimizer(optimizer, imports)
        if code is None:
            lines.append(f"    None,  # labels[{i}]: this optimizer cannot be written as code; put it here")
        else:
            lines.append(f"    {code},  # labels[{i}]")
    lines.append("]")
    lines.append("optimizer = MultiOptimizer(optimizers, filters, labels=labels)")
    lines.append("# or, to change a live optimizer's rules: "
                 "optimizer.repartition(filters, model.trainable_parameters(), labels=labels)")
    ordered = sorted(imports, key=lambda line: (not line.startswith("import"), line))
    return "\n".join(head + ordered + [""] + lines)


class Export(NamedTuple):
    """What an export holds: its ``text`` ("" when nothing can be written) and, when the text
    is not the whole optimizer or is empty, the ``problem`` in words.
    """

    text: str
    problem: str


def export_text(optimizer: Any, form: str) -> Export:
    """What the editor's "Copy as ..." buttons copy: ``"python"``, or the rule file ``"toml"``/``"json"``.

    The TOML and JSON forms are exactly what :func:`multiopt_lab.save_optimizer`
    writes, so :func:`multiopt_lab.load_optimizer`, ``load_rules`` and
    ``python -m multiopt_lab check`` read them. When an optimizer cannot be
    described (a schedule of your own), the file holds the labels and rules
    alone and ``problem`` says why; rules that are Python callables give no
    file at all (``text`` is ``""``).
    """
    if form not in EXPORT_FORMS:
        raise ValueError(f"expected form 'python', 'toml' or 'json', got {form!r}")
    labels, filters = list(optimizer.labels), list(optimizer.filters)
    problems = []
    for label, group_optimizer in zip(labels, optimizer.optimizers):
        try:
            optimizer_to_data(group_optimizer)
        except (ValueError, TypeError) as err:
            problems.append(f"group {label!r}: {err}")
    if form == "python":
        note = f"some optimizers are None in the code: {'; '.join(problems)}" if problems else ""
        return Export(rules_python(labels, filters, optimizer.optimizers), note)
    try:
        rules_only = rule_file_text(groups_to_data(labels, filters), form)
    except RuleFileError as err:  # a Python callable: no file can hold it
        return Export("", str(err))
    if problems:
        return Export(rules_only, f"the file holds the rules without the optimizers: "
                                  f"{'; '.join(problems)}")
    return Export(optimizer_file_text(optimizer, form), "")
