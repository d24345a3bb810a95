"""Save and load group labels with their rule expressions, as TOML or JSON.

The shape, in partition order, the last group being the fallback (no ``rule``)::

    [[group]]
    label = "muon"
    rule = 'ndim == 2 and not glob("*embed*")'

    [[group]]
    label = "adamw"

JSON holds the same data: ``{"group": [{"label": "muon", "rule": "..."},
{"label": "adamw"}]}``. An optional top-level ``version = 1`` is accepted.
Only rule expressions can be saved: a Python callable cannot.

Example:
    >>> text = rules_to_toml(["muon", "adamw"], ["ndim == 2"])
    >>> rules_from_toml(text)
    (['muon', 'adamw'], [Rule('ndim == 2', label='muon')])
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import tomli_w

from multiopt_lab.arguments import checked, kind, is_path, is_text
from multiopt_lab.io.atomic import write_text_atomically
from multiopt_lab.rules.rule import Rule
from multiopt_lab.io.rulefile_data import RuleFileError, groups_from_data, groups_to_data

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["RuleFileError", "rules_to_json", "rules_from_json", "rules_to_toml",
           "rules_from_toml", "save_rules", "load_rules"]

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
    return json.dumps(groups_to_data(labels, rules), indent=2)


@checked(text=is_text, source=is_text)
def rules_from_json(text: str, source: str = "JSON") -> tuple[list[str], list[Rule]]:
    """Read ``(labels, rules)`` back from :func:`rules_to_json`'s format.

    Example:
        >>> rules_from_json('{"group": [{"label": "w", "rule": "ndim == 2"}, {"label": "rest"}]}')[0]
        ['w', 'rest']
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise RuleFileError(f"{source}: not valid JSON: {err}") from None
    except RecursionError:
        raise RuleFileError(f"{source}: not a rule file: its values are nested too deeply") from None
    except ValueError as err:  # an integer of more than 4,300 digits
        raise RuleFileError(f"{source}: not a rule file: {err}") from None
    return groups_from_data(data, source)


@checked(**_WRITE)
def rules_to_toml(labels: Sequence[str], rules: Sequence[Any]) -> str:
    """Serialise labels and rule expressions to TOML (``[[group]]`` tables).

    Example:
        >>> print(rules_to_toml(["w", "rest"], ["ndim == 2"]).splitlines()[3:6])
        ['version = 1', '', '[[group]]']
    """
    data = groups_to_data(labels, rules)
    # tomli_w inlines short tables; write [[group]] headers ourselves so every
    # group reads as its own block, and let tomli_w quote the values.
    blocks = [f"version = {data['version']}\n"]
    for group in data["group"]:
        block = "[[group]]\n" + tomli_w.dumps({"label": group["label"]})
        if "rule" in group:
            block += "rule = " + _toml_string(group["rule"]) + "\n"
        blocks.append(block)
    return _HEADER + "\n".join(blocks)


def _toml_string(text: str) -> str:
    # A literal string ('...') needs no escapes, so rules read as typed.
    if "'" not in text and all(c == "\t" or (" " <= c != "\x7f") for c in text):
        return f"'{text}'"
    return tomli_w.dumps({"x": text})[4:-1]


@checked(text=is_text, source=is_text)
def rules_from_toml(text: str, source: str = "TOML") -> tuple[list[str], list[Rule]]:
    """Read ``(labels, rules)`` from TOML text.

    Example:
        >>> rules_from_toml('[[group]]\\nlabel = "all"')
        (['all'], [])
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RuleFileError(f"{source}: not valid TOML: {err}") from None
    except RecursionError:
        raise RuleFileError(f"{source}: not a rule file: its values are nested too deeply") from None
    except ValueError as err:  # an integer of more than 4,300 digits
        raise RuleFileError(f"{source}: not a rule file: {err}") from None
    return groups_from_data(data, source)


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise RuleFileError(f"{path}: expected a .toml or .json file, found {suffix or 'no extension'!r}")
    return suffix[1:]


@checked(path=is_path, **_WRITE)
def save_rules(path: str | os.PathLike, labels: Sequence[str], rules: Sequence[Any]) -> None:
    """Write a rule file; the extension (.toml or .json) picks the format.

    The file is replaced atomically: a failure leaves the old file intact.

    Example:
        >>> import tempfile, os
        >>> target = os.path.join(tempfile.mkdtemp(), "rules.toml")
        >>> save_rules(target, ["w", "rest"], ["ndim == 2"])
        >>> load_rules(target)[0]
        ['w', 'rest']
    """
    path = Path(path)
    kind = _format_of(path)
    text = rules_to_toml(labels, rules) if kind == "toml" else rules_to_json(labels, rules) + "\n"
    write_text_atomically(path, text)


@checked(path=is_path)
def load_rules(path: str | os.PathLike) -> tuple[list[str], list[Rule]]:
    """Read ``(labels, rules)`` from a .toml or .json rule file.

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
    path = Path(path)
    kind = _format_of(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RuleFileError(f"cannot read rule file {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise RuleFileError(f"cannot read rule file {path}: expected UTF-8 text, found byte "
                            f"{err.object[err.start]:#04x} at offset {err.start}") from None
    return rules_from_toml(text, str(path)) if kind == "toml" else rules_from_json(text, str(path))
