"""The data model of rule files, shared by the TOML and JSON forms.

``{"version": 1, "group": [{"label": ..., "rule": ...}, ..., {"label": ...}]}``:
groups in partition order, the last one the fallback, without a rule. A
group may also hold its ``optimizer``: a table with a string ``class`` and
keyword arguments (read by :mod:`multiopt_lab._src.optimizer_file.as_data`; here only
its shape is checked, so that ``load_rules`` reads any such file).
"""

from __future__ import annotations

from typing import Any
from collections.abc import Sequence

from multiopt_lab._src.partition.labels import check_labels
from multiopt_lab._src.rules import Rule, RuleError, as_rule

__all__ = ["RuleFileError", "VERSION", "groups_to_data", "read_groups", "shown"]

VERSION = 1


class RuleFileError(ValueError):
    """A rule file (or data meant for one) that cannot be read or written.

    Example:
        >>> isinstance(RuleFileError("bad"), ValueError)
        True
    """


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for any value a file can hold (an
    integer of 5,000 digits cannot even be turned into text whole).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        # str() refuses integers over 4,300 digits: count them from the bits.
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise RuleFileError(f"{where}: holds {text[err.start]!r} at character {err.start + 1}, "
                            "a lone surrogate, which is not text; remove it") from None


def groups_to_data(labels: Sequence[str], rules: Sequence[Any],
                   optimizers: Sequence[dict] | None = None) -> dict:
    """Labels and rules (one fewer; a trailing None is dropped) -> the file's data.

    Args:
        labels (Sequence[str]): One per group, the fallback last.
        rules (Sequence): One per group but the fallback: expressions or ``Rule`` s.
        optimizers (Sequence[dict], optional): One table per group, already
            described as data (:func:`multiopt_lab._src.optimizer_file.as_data.optimizer_to_data`).
            Default: ``None`` (labels and rules only).
    """
    rules = list(rules)
    if len(rules) == len(labels) and rules and rules[-1] is None:
        rules = rules[:-1]  # Assignment.rules ends with None for the fallback
    labels = check_labels(labels, len(rules))
    groups: list[dict[str, Any]] = []
    for label, item in zip(labels, rules):
        if item is None:
            raise RuleFileError(f"group {label!r} has no rule; only the last group, the fallback, "
                                "goes without one")
        parsed = as_rule(item)  # strings are parsed: never save a rule that cannot load
        if parsed.text is None:
            raise RuleFileError(f"cannot save group {label!r}: its rule is a Python callable "
                                f"({parsed.describe()}); only rule expressions (strings such "
                                "as 'ndim == 2') can be saved. Rewrite it as an expression.")
        groups.append({"label": label, "rule": parsed.text})
    groups.append({"label": labels[-1]})
    if optimizers is not None:
        optimizers = list(optimizers)
        if len(optimizers) != len(groups):
            raise RuleFileError(f"expected one optimizer per group ({len(groups)}), found "
                                f"{len(optimizers)}")
        for group, table in zip(groups, optimizers):
            group["optimizer"] = table
    return {"version": VERSION, "group": groups}


def read_groups(data: Any, source: str) -> tuple[list[str], list[Rule], list[dict | None]]:
    """The file's data -> ``(labels, rules, optimizer tables)`` (None for a group without one).
    """
    if not isinstance(data, dict) or not isinstance(data.get("group"), list) or not data["group"]:
        raise RuleFileError(f"{source}: expected a list of groups under the key 'group' "
                            "(TOML: [[group]] tables), found "
                            f"{type(data).__name__ if not isinstance(data, dict) else shown(sorted(data))}")
    extra = set(data) - {"group", "version"}
    if extra:
        raise RuleFileError(f"{source}: unknown top-level keys {shown(sorted(extra))}; expected "
                            "'group' (and optionally 'version')")
    version = data.get("version", VERSION)
    if type(version) is not int or version != VERSION:  # True == 1 and 1.0 == 1: refuse both
        raise RuleFileError(f"{source}: version {shown(version)} is not supported; expected "
                            f"{VERSION}")
    groups = data["group"]
    labels, texts, optimizers = [], [], []
    for i, group in enumerate(groups):
        where = f"{source}: group {i + 1} of {len(groups)}"
        if not isinstance(group, dict):
            raise RuleFileError(f"{where}: expected a table with 'label' and 'rule', found "
                                f"{shown(group)}")
        unknown = set(group) - {"label", "rule", "optimizer"}
        if unknown:
            raise RuleFileError(f"{where}: unknown keys {shown(sorted(unknown))}; expected 'label', "
                                "'rule' and optionally 'optimizer'")
        if not isinstance(group.get("label"), str):
            raise RuleFileError(f"{where}: expected a string 'label', found "
                                f"{shown(group.get('label'))}")
        _check_text(group["label"], f"{where}: its label")
        if isinstance(group.get("rule"), str):
            _check_text(group["rule"], f"{where}: its rule")
        is_fallback = i == len(groups) - 1
        if is_fallback and "rule" in group:
            raise RuleFileError(f"{where} ({group['label']!r}) is the fallback and takes no rule; "
                                "remove its 'rule' or add a fallback group after it")
        if not is_fallback and not isinstance(group.get("rule"), str):
            raise RuleFileError(f"{where} ({group['label']!r}): expected a string 'rule' "
                                "(only the last group, the fallback, has none)")
        optimizer = group.get("optimizer")
        if "optimizer" in group and not (isinstance(optimizer, dict)
                                         and isinstance(optimizer.get("class"), str)):
            raise RuleFileError(f"{where} ({group['label']!r}): expected its 'optimizer' to be a "
                                "table with a string 'class' (TOML: [group.optimizer] then "
                                f"class = \"AdamW\"), found {shown(optimizer)}")
        labels.append(group["label"])
        optimizers.append(optimizer)
        if not is_fallback:
            texts.append(group["rule"])
    try:
        check_labels(labels, len(texts))
    except ValueError as err:
        raise RuleFileError(f"{source}: {err}") from None
    rules, invalid = [], []
    for label, text in zip(labels, texts):  # every invalid rule is reported, not only the first
        try:
            rules.append(Rule(text, label))
        except RuleError as err:
            invalid.append((label, err))
    if len(invalid) == 1:
        label, first = invalid[0]
        raise RuleFileError(f"{source}: the rule of group {label!r} is invalid: {first}") from first
    if invalid:
        listed = "\n".join(f"- the rule of group {label!r}: {err}" for label, err in invalid)
        raise RuleFileError(f"{source}: {len(invalid)} rules are invalid:\n{listed}") from invalid[0][1]
    return labels, rules, optimizers
