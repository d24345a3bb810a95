# Tests the private module multiopt_lab._src.partition.labels's own unit.
"""Labels: one rule for every entry point (partition/labels.py).

A label is one line of printable text: no control character (category Cc),
no line or paragraph separator, no lone surrogate, no bidirectional
formatting character; never a reserved label ("total", "-"). Every entry
point that takes labels refuses the others with the same ValueError, and
changes nothing.
"""

from __future__ import annotations

import inspect
import sys
import unicodedata

import mlx.nn as nn
import mlx.optimizers as optim
import pytest

import multiopt_lab as mol
from multiopt_lab._src.partition.labels import (
    RESERVED_LABELS, check_label_text, check_labels, label_text_problem,
)

#: Characters that end a line or control a terminal, and ones that reorder text.
BAD = ["\n", "\r", "\r\n", "\t", "\x00", "\x1b", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85",
       "\x7f", "\u2028", "\u2029", "\ud800", "\udfff", "\u202e", "\u2066", "\u200f"]
GOOD = ["adamw", "Ünïcode", "层", "emoji 🙂", "a b", "a\u200db", "muon/decay", "x" * 500,
        "'); import os #", '"quoted"']


def model():
    return nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))


def multi(labels=("sgd", "adam")):
    return mol.MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"], labels=list(labels))


@pytest.mark.parametrize("char", BAD, ids=[f"U+{ord(c[0]):04X}" for c in BAD])
class TestEveryEntryPointRefusesTheSameWay:
    def label(self, char):
        return f"bad{char}label"

    def test_multi_optimizer(self, char):
        with pytest.raises(ValueError, match="one line of printable text"):
            multi(["sgd", self.label(char)])

    def test_assign(self, char):
        with pytest.raises(ValueError, match="one line of printable text"):
            mol.assign(model(), ["ndim == 2"], [self.label(char), "rest"])

    def test_repartition_changes_nothing(self, char):
        optimizer = multi()
        optimizer.init(model().trainable_parameters())
        before = optimizer.state["states"][0]["layers"]
        with pytest.raises(ValueError, match="one line of printable text"):
            optimizer.repartition(["ndim == 1"], model(), labels=["sgd", self.label(char)])
        assert optimizer.labels == ("sgd", "adam") and optimizer.filters[0].text == "ndim == 2"
        assert optimizer.state["states"][0]["layers"] is before

    def test_request_repartition(self, char):
        optimizer = multi()
        with pytest.raises(ValueError, match="one line of printable text"):
            optimizer.request_repartition(["ndim == 1"], labels=[self.label(char), "adam"])
        assert not optimizer.has_pending_repartition

    def test_rule_files(self, char):
        escaped = self.label(char).encode("unicode_escape").decode("ascii")
        if "\\x" in escaped or "\\u" in escaped or "\\U" in escaped:  # JSON writes \u escapes
            escaped = "".join(c if c.isascii() and c.isprintable() else f"\\u{ord(c):04x}"
                              for c in self.label(char))
        # (the loader names a lone surrogate before the label rule sees it)
        with pytest.raises(mol.RuleFileError, match="one line of printable text|lone surrogate"):
            mol.rules_from_json('{"group": [{"label": "' + escaped + '", "rule": "ndim == 2"}, '
                                '{"label": "rest"}]}')

    def test_history(self, char):
        history = mol.History()
        with pytest.raises(ValueError, match="one line of printable text"):
            history.record(1, loss=1.0, metrics={self.label(char): {"update_norm": 0.1}})
        with pytest.raises(ValueError, match="one line of printable text"):
            history.start_run("run", {"labels": ["sgd", self.label(char)]})
        with pytest.raises(ValueError, match="one line of printable text"):
            history.start_run(self.label(char))
        assert len(history) == 0 and history.runs == ()


@pytest.mark.parametrize("label", GOOD)
def test_printable_labels_are_accepted(label):
    assert multi(["sgd", label]).labels == ("sgd", label)
    history = mol.History()
    history.record(1, metrics={label: {"update_norm": 0.5}})
    assert history.last("update_norm", group=label) == 0.5


def test_every_character_that_ends_a_line_is_refused():
    # Build for the class: whatever str.splitlines splits on, and every control character.
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        ends_a_line = len(f"a{char}b".splitlines()) > 1
        if ends_a_line or unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            assert label_text_problem(char) is not None, f"U+{code:04X} is accepted"


def test_the_message_names_the_character_and_its_position():
    with pytest.raises(ValueError) as info:
        check_label_text("muon\u2028import os")
    assert "line break" in str(info.value) and "position 4" in str(info.value)
    assert "U+2028" in str(info.value)


def test_a_recipe_escapes_a_child_name_that_is_not_one_line():
    net = nn.Module()
    net["a\nb"] = nn.Linear(2, 2)  # a Module is a dict: any key is a child name
    net["c"] = nn.Linear(2, 2)
    optimizer = mol.recipes.layerwise_lr_decay(net, optim.SGD(0.1), decay=0.5)
    assert optimizer.labels == ("a\\nb", "c")
    assert optimizer.assign(net).labels == {"a\nb.weight": "a\\nb", "a\nb.bias": "a\\nb",
                                            "c.weight": "c", "c.bias": "c"}


class TestReservedLabels:
    @pytest.mark.parametrize("label", sorted(RESERVED_LABELS))
    def test_a_reserved_label_is_refused(self, label):
        with pytest.raises(ValueError, match="reserved"):
            multi([label, "adam"])

    def test_dash_does_not_mix_with_the_loss(self):
        # "-" is the History's group of the loss: a group called "-" mixed its metrics with it.
        with pytest.raises(ValueError, match="reserved for a History's loss"):
            mol.MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"], labels=["-", "adam"])
        history = mol.History()
        with pytest.raises(ValueError, match="group of the loss"):
            history.record(1, loss=2.0, metrics={"-": {"loss": 5.0}})
        assert len(history) == 0

    def test_class_names_never_give_a_reserved_label(self):
        total = type("Total", (optim.SGD,), {})
        dash = type("-", (optim.SGD,), {})
        broken = type("a\nb", (optim.SGD,), {})
        optimizer = mol.MultiOptimizer([total(0.1), dash(0.1), broken(0.1)], ["ndim == 2", "ndim == 1"])
        assert optimizer.labels == ("total_group", "-_group", "optimizer")


def test_check_labels_keeps_its_name_and_signature():
    # rule-file loaders call it; its contract is the one every entry point shares
    assert list(inspect.signature(check_labels).parameters) == ["labels", "n_filters"]
    assert check_labels(["a", "b"], 1) == ("a", "b")
