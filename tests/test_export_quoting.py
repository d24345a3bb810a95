# Tests the private modules' own units: multiopt_lab._src.io.rulefile,
#   multiopt_lab._src.render.export.
"""Every generated text quotes what it writes: for ANY label and rule text, the exported Python parses
to exactly the expected assignments and calls nothing else, and the TOML and JSON read back the
same strings (issue 26 item 1: "Copy as Python" wrote a label into a ``# {label}`` comment, so a
label holding a line break ran code)."""

from __future__ import annotations

import ast
import json
import tomllib

import mlx.optimizers as optim
from hypothesis import given, settings
from hypothesis import strategies as st

from multiopt_lab import MultiOptimizer
from multiopt_lab._src.io.rulefile import data_to_json, data_to_toml
from multiopt_lab._src.render.export import export_text, rules_python

# Any text: line breaks (\n, \r, \u2028, \x85), quotes, backslashes, NUL, code, emoji...
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
HOSTILE = ["x\nimport os; os.system('echo pwned')", "x\r__import__('os')", "'''", '"""', "\\", "x\u2028y",
           "#", "\x00", "x\x85y", "']; import os; ['"]


def groups():
    """``(labels, rules)``: distinct labels, one rule text per group but the fallback."""
    labels = st.lists(TEXT | st.sampled_from(HOSTILE), min_size=1, max_size=5, unique=True)
    return labels.flatmap(lambda ls: st.tuples(st.just(ls), st.lists(TEXT | st.sampled_from(HOSTILE),
                                                                      min_size=len(ls) - 1, max_size=len(ls) - 1)))


def calls(tree: ast.AST) -> list[str]:
    """The dotted name of every call in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found.append(ast.unparse(node.func))
    return found


def assignment_targets(tree: ast.Module) -> list[str]:
    return [ast.unparse(target) for node in tree.body if isinstance(node, ast.Assign) for target in node.targets]


@settings(max_examples=300, deadline=None)
@given(groups())
def test_the_python_export_is_exactly_two_literal_assignments(pair):
    labels, rules = pair
    tree = ast.parse(rules_python(labels, rules))
    assert [type(node) for node in tree.body] == [ast.Assign, ast.Assign]
    assert assignment_targets(tree) == ["labels", "filters"]
    assert ast.literal_eval(tree.body[0].value) == labels
    assert ast.literal_eval(tree.body[1].value) == rules
    assert calls(tree) == []


@settings(max_examples=100, deadline=None)
@given(groups())
def test_with_optimizers_the_only_calls_are_the_optimizers_and_schedules(pair):
    labels, rules = pair
    schedule = optim.join_schedules([optim.linear_schedule(0.0, 1e-3, 10), optim.cosine_decay(1e-3, 90)], [10])
    optimizers = [optim.AdamW(schedule)] + [optim.SGD(0.1) for _ in labels[1:]]
    # Written from the parts: MultiOptimizer itself refuses labels with control characters.
    tree = ast.parse(rules_python(labels, rules, optimizers))
    assert assignment_targets(tree) == ["labels", "filters", "optimizers", "optimizer"]
    assert [ast.unparse(node) for node in tree.body[:2]] == [
        "import mlx.optimizers as optim", "from multiopt_lab import MultiOptimizer"]
    assert ast.literal_eval(tree.body[2].value) == labels and ast.literal_eval(tree.body[3].value) == rules
    assert sorted(calls(tree)) == sorted(["optim.AdamW", "optim.join_schedules", "optim.linear_schedule",
                                          "optim.cosine_decay", "MultiOptimizer"]
                                         + ["optim.SGD"] * (len(labels) - 1))


@settings(max_examples=300, deadline=None)
@given(groups(), st.dictionaries(TEXT, TEXT | st.floats(allow_nan=False, allow_infinity=False)
                                 | st.integers(-2 ** 63, 2 ** 63 - 1) | st.lists(TEXT, max_size=3), max_size=3))
def test_the_toml_and_json_writers_read_back_the_same_strings(pair, arguments):
    labels, rules = pair
    groups = [{"label": label, "rule": rule} for label, rule in zip(labels, rules)] + [{"label": labels[-1]}]
    groups[-1]["optimizer"] = {"class": "SGD", **arguments}
    data = {"version": 1, "group": groups}
    assert tomllib.loads(data_to_toml(data)) == data
    assert json.loads(data_to_json(data)) == data


def test_the_label_that_ran_code_stays_a_string():
    label = "x\nimport os; os.system('echo pwned')  #"
    text = rules_python([label, "rest"], ["ndim == 2"], [optim.SGD(0.1), optim.Adam(1e-3)])
    assert "\nimport os" not in text
    namespace: dict = {}
    exec(compile(rules_python([label, "rest"], ["ndim == 2"]), "<export>", "exec"), namespace)
    assert namespace["labels"] == [label, "rest"] and namespace["filters"] == ["ndim == 2"]
    data = {"version": 1, "group": [{"label": label, "rule": "ndim == 2"}, {"label": "rest"}]}
    assert tomllib.loads(data_to_toml(data))["group"][0]["label"] == label


def test_an_export_through_the_optimizer_runs_and_rebuilds_it():
    optimizer = MultiOptimizer([optim.SGD(0.1), optim.Adam(1e-3)], ["ndim == 2"], labels=["it's", 'say "hi"'])
    namespace: dict = {}
    exec(compile(export_text(optimizer, "python").text, "<export>", "exec"), namespace)
    assert namespace["optimizer"].labels == ("it's", 'say "hi"')
