"""Save and load group labels with their rule expressions, as TOML or JSON.

The shape, in partition order, the last group being the fallback (no ``rule``)::

    [[group]]
    label = "muon"
    rule = 'ndim == 2 and not glob("*embed*")'

    [[group]]
    label = "adamw"

Each group may also carry its optimizer (written by
:func:`multiopt_lab.save_optimizer`, read by :func:`multiopt_lab.load_optimizer`;
``load_rules`` reads the labels and rules of such a file and leaves the
optimizers)::

    [group.optimizer]
    class = "AdamW"
    learning_rate = { schedule = "cosine_decay", init = 0.001, decay_steps = 1000, end = 0.0 }
    weight_decay = 0.01

JSON holds the same data: ``{"group": [{"label": "muon", "rule": "..."},
{"label": "adamw"}]}``. An optional top-level ``version = 1`` is accepted.
Only rule expressions can be saved: a Python callable cannot. Every file,
whoever asks for it (``save_rules``, ``save_optimizer``, the editor's "Copy
as TOML"), is written by :func:`data_to_toml` or :func:`data_to_json`, which
quote every label, rule and value they write.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple
from collections.abc import Sequence

import tomli_w

from multiopt_lab._src.arguments import checked, kind, is_path, is_text
from multiopt_lab._src.io.atomic import write_text_atomically
from multiopt_lab._src.rules.rule import Rule
from multiopt_lab._src.io.rulefile_data import RuleFileError, groups_to_data, read_groups

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["RuleFileError", "rules_to_json", "rules_from_json", "rules_to_toml",
           "rules_from_toml", "save_rules", "load_rules", "data_to_toml", "data_to_json",
           "RuleFileContents", "read_rule_file", "rule_file_text", "file_kind"]

_HEADER = ("# multiopt_lab rules: groups in partition order, first match wins.\n"
           "# The last group is the fallback and has no rule.\n\n")


#: What rules_to_json, rules_to_toml and save_rules take.
_WRITE = dict(labels=kind((list, tuple), "a list of group labels, one per group"),
              rules=kind((list, tuple), "a list of rules, one per group but the last"))


@checked(**_WRITE)
def rules_to_json(labels: Sequence[str], rules: Sequence[Any]) -> str:
    """Serialise labels and rule expressions (one fewer than labels) to JSON.

    Example:
        >>> print(rules_to_json(["w", "rest"], ["ndim == 2"]))
        {
          "version": 1,
          "group": [
            {
              "label": "w",
              "rule": "ndim == 2"
            },
            {
              "label": "rest"
            }
          ]
        }
    """
    return data_to_json(groups_to_data(labels, rules))


def data_to_json(data: dict) -> str:
    """A rule file's data (:func:`~multiopt_lab._src.io.rulefile_data.groups_to_data`) as JSON text.
    """
    try:
        return json.dumps(data, indent=2, allow_nan=False)
    except ValueError as err:  # NaN or inf: the file would not be JSON
        raise RuleFileError(f"cannot write JSON: {err}") from None


@checked(text=is_text, source=is_text)
def rules_from_json(text: str, source: str = "JSON") -> tuple[list[str], list[Rule]]:
    """Read ``(labels, rules)`` back from :func:`rules_to_json`'s format.

    Example:
        >>> rules_from_json('{"group": [{"label": "w", "rule": "ndim == 2"}, {"label": "rest"}]}')[0]
        ['w', 'rest']
    """
    return read_groups(_json_data(text, source), source)[:2]


def _json_data(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RuleFileError(f"{source}: not valid JSON: {err}") from None
    except RecursionError:
        raise RuleFileError(f"{source}: not a rule file: its values are nested too deeply") from None
    except ValueError as err:  # an integer of more than 4,300 digits
        raise RuleFileError(f"{source}: not a rule file: {err}") from None


@checked(**_WRITE)
def rules_to_toml(labels: Sequence[str], rules: Sequence[Any]) -> str:
    """Serialise labels and rule expressions to TOML (``[[group]]`` tables).

    Example:
        >>> print(rules_to_toml(["w", "rest"], ["ndim == 2"]).splitlines()[3:6])
        ['version = 1', '', '[[group]]']
    """
    return data_to_toml(groups_to_data(labels, rules))


def data_to_toml(data: dict) -> str:
    """A rule file's data (:func:`~multiopt_lab._src.io.rulefile_data.groups_to_data`) as TOML text.

    One ``[[group]]`` block per group (label, rule) and, when the group has
    one, its ``[group.optimizer]`` table with one argument per line.
    """
    # tomli_w would write each optimizer's schedule as a table of its own, far
    # from its group; write the blocks here and let tomli_w quote the strings.
    blocks = [f"version = {data['version']}\n"]
    for group in data["group"]:
        block = "[[group]]\nlabel = " + _basic_string(group["label"]) + "\n"
        if "rule" in group:
            block += "rule = " + _toml_string(group["rule"]) + "\n"
        if group.get("optimizer") is not None:
            block += _optimizer_tables(group["optimizer"])
        blocks.append(block)
    return _HEADER + "\n".join(blocks)


def _optimizer_tables(optimizer: dict) -> str:
    """``[group.optimizer]`` with one argument a line; a long table value (a joined schedule)
    gets a table of its own after it, one item of a list of tables a line."""
    short: list[tuple[str, str]] = []
    long: list[tuple[str, str]] = []
    for key, value in optimizer.items():
        text = _toml_value(value)
        (long if isinstance(value, dict) and len(text) > _INLINE_LIMIT else short).append((key, text))
    out = "\n[group.optimizer]\n" + "".join(f"{_toml_key(key)} = {text}\n" for key, text in short)
    for key, _ in long:
        out += f"\n[group.optimizer.{_toml_key(key)}]\n"
        for name, value in optimizer[key].items():
            if isinstance(value, list) and any(isinstance(item, dict) for item in value):
                items = "".join(f"    {_toml_value(item)},\n" for item in value)
                out += f"{_toml_key(name)} = [\n{items}]\n"
            else:
                out += f"{_toml_key(name)} = {_toml_value(value)}\n"
    return out


#: Characters beyond which a table value of an optimizer is written as a table of its own.
_INLINE_LIMIT = 90


def _toml_string(text: str) -> str:
    # A literal string ('...') needs no escapes, so rules read as typed.
    if "'" not in text and all(c == "\t" or (" " <= c != "\x7f") for c in text):
        return f"'{text}'"
    return _basic_string(text)


def _basic_string(text: str) -> str:
    return tomli_w.dumps({"x": text})[4:-1]


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _basic_string(key)


def _toml_value(value: Any) -> str:
    """``value`` as a TOML inline value (tables and arrays on one line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RuleFileError(f"cannot write {value} to a rule file: expected finite numbers")
        return repr(value)
    if isinstance(value, str):
        return _basic_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise RuleFileError(f"cannot write a {type(value).__name__} to a rule file: expected numbers, "
                        "booleans, strings, lists and tables")


@checked(text=is_text, source=is_text)
def rules_from_toml(text: str, source: str = "TOML") -> tuple[list[str], list[Rule]]:
    """Read ``(labels, rules)`` from TOML text.

    Example:
        >>> rules_from_toml('[[group]]\\nlabel = "all"')
        (['all'], [])
    """
    return read_groups(_toml_data(text, source), source)[:2]


def _toml_data(text: str, source: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RuleFileError(f"{source}: not valid TOML: {err}") from None
    except RecursionError:
        raise RuleFileError(f"{source}: not a rule file: its values are nested too deeply") from None
    except ValueError as err:  # an integer of more than 4,300 digits
        raise RuleFileError(f"{source}: not a rule file: {err}") from None


def file_kind(path: Path) -> str:
    """``"toml"`` or ``"json"`` from a file's extension; RuleFileError for any other.
    """
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise RuleFileError(f"{path}: expected a .toml or .json file, found {suffix or 'no extension'!r}")
    return suffix[1:]


def rule_file_text(data: dict, kind: str) -> str:
    """The text of a rule file of ``kind`` (``"toml"`` or ``"json"``) holding ``data``.
    """
    if kind == "toml":
        return data_to_toml(data)
    if kind == "json":
        return data_to_json(data) + "\n"
    raise ValueError(f"expected the form 'toml' or 'json', got {kind!r}")


@checked(path=is_path, **_WRITE)
def save_rules(path: str | os.PathLike, labels: Sequence[str], rules: Sequence[Any]) -> None:
    """Write a rule file; the extension (.toml or .json) picks the format.

    The file is replaced atomically: a failure leaves the old file intact.
    :func:`multiopt_lab.save_optimizer` writes the same format with each
    group's optimizer too.

    Example:
        >>> import tempfile, os
        >>> target = os.path.join(tempfile.mkdtemp(), "rules.toml")
        >>> save_rules(target, ["w", "rest"], ["ndim == 2"])
        >>> load_rules(target)[0]
        ['w', 'rest']
    """
    path = Path(path)
    kind = file_kind(path)
    write_text_atomically(path, rule_file_text(groups_to_data(labels, rules), kind))


class RuleFileContents(NamedTuple):
    """What a rule file holds: labels, rules and (None where absent) each group's optimizer table.
    """

    labels: list[str]
    rules: list[Rule]
    optimizers: list[dict | None]


def read_rule_file(path: str | os.PathLike) -> RuleFileContents:
    """Read every group of a .toml or .json rule file, its optimizer table included.
    """
    path = Path(path)
    kind = file_kind(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RuleFileError(f"cannot read rule file {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise RuleFileError(f"cannot read rule file {path}: expected UTF-8 text, found byte "
                            f"{err.object[err.start]:#04x} at offset {err.start}") from None
    data = _toml_data(text, str(path)) if kind == "toml" else _json_data(text, str(path))
    return RuleFileContents(*read_groups(data, str(path)))


@checked(path=is_path)
def load_rules(path: str | os.PathLike) -> tuple[list[str], list[Rule]]:
    """Read ``(labels, rules)`` from a .toml or .json rule file.

    A file that also holds each group's optimizer (from
    :func:`multiopt_lab.save_optimizer`) reads the same way: the optimizers
    are left to :func:`multiopt_lab.load_optimizer`.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "rules.toml")
        >>> save_rules(path, ["muon", "adamw"], ["ndim == 2"])
        >>> labels, rules = load_rules(path)
        >>> labels, rules
        (['muon', 'adamw'], [Rule('ndim == 2', label='muon')])

    Raises:
        RuleFileError: Missing file, wrong shape, or an invalid rule (the
            message names the file, the group and shows the caret).
    """
    contents = read_rule_file(path)
    return contents.labels, contents.rules
