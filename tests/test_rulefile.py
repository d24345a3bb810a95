# Tests the private module multiopt_lab._src.io.rulefile_data's own unit.
"""Rules and labels to and from JSON and TOML."""

from __future__ import annotations

import json

import pytest

from models import transformer
from multiopt_lab import (
    RuleFileError, assign, by_glob, by_regex, load_rules, rule, rules_from_json, rules_from_toml,
    rules_to_json, rules_to_toml, save_rules,
)

LABELS = ["muon", "nodecay", "quoted", "adamw"]
RULES = ['ndim == 2 and not glob("*embed*")', by_regex(r"\.bias$") | 'name == "b"', "name == 'it''s'"]


class TestRoundTrip:
    @pytest.mark.parametrize("to_text, from_text", [(rules_to_toml, rules_from_toml), (rules_to_json, rules_from_json)])
    def test_round_trip(self, to_text, from_text):
        labels, rules = from_text(to_text(LABELS, RULES))
        assert labels == LABELS
        assert [r.text for r in rules] == ['ndim == 2 and not glob("*embed*")',
                                           r'regex(r"\.bias$") or name == "b"', "name == 'it''s'"]
        assert [r.label for r in rules] == LABELS[:-1]

    def test_toml_shape_reads_as_documented(self):
        text = rules_to_toml(["muon", "adamw"], [by_glob("*.weight")])
        assert text.endswith('[[group]]\nlabel = "muon"\nrule = \'glob("*.weight")\'\n\n'
                             '[[group]]\nlabel = "adamw"\n')
        assert "version = 1" in text

    def test_json_shape(self):
        data = json.loads(rules_to_json(["a", "b"], ["ndim == 1"]))
        assert data == {"version": 1, "group": [{"label": "a", "rule": "ndim == 1"}, {"label": "b"}]}

    def test_rule_with_newline_and_control_characters_round_trips(self):
        text = 'ndim == 2\nand name != "\\t"'
        assert rules_from_toml(rules_to_toml(["a", "b"], [text]))[1][0].text == text

    def test_assignment_rules_with_trailing_none(self, tmp_path):
        a = assign(transformer(), ["ndim == 2"], ["muon", "adamw"])
        save_rules(tmp_path / "r.json", a.group_labels, a.rules)
        labels, rules = load_rules(tmp_path / "r.json")
        assert assign(transformer(), rules, labels).labels == a.labels

    def test_single_fallback_group(self):
        assert rules_from_toml(rules_to_toml(["all"], [])) == (["all"], [])


class TestFiles:
    @pytest.mark.parametrize("name", ["rules.toml", "rules.json", "RULES.TOML"])
    def test_save_and_load(self, tmp_path, name):
        save_rules(tmp_path / name, LABELS, RULES)
        labels, rules = load_rules(str(tmp_path / name))
        assert labels == LABELS and rules[0] == rule('ndim == 2 and not glob("*embed*")')

    def test_failed_save_keeps_the_old_file(self, tmp_path):
        target = tmp_path / "rules.toml"
        save_rules(target, ["a", "b"], ["ndim == 1"])
        before = target.read_text()
        with pytest.raises(RuleFileError):
            save_rules(target, ["a", "b"], [lambda p, a: True])
        assert target.read_text() == before
        assert [p.name for p in tmp_path.iterdir()] == ["rules.toml"]

    def test_wrong_extension(self, tmp_path):
        with pytest.raises(RuleFileError, match="expected a .toml or .json file, found '.yaml'"):
            save_rules(tmp_path / "r.yaml", ["a"], [])
        with pytest.raises(RuleFileError, match="no extension"):
            load_rules(tmp_path / "rules")

    def test_missing_file(self, tmp_path):
        with pytest.raises(RuleFileError, match="cannot read rule file .*nothing.toml"):
            load_rules(tmp_path / "nothing.toml")


class TestErrors:
    def test_callable_cannot_be_saved(self):
        def my_filter(path, array):
            return True
        with pytest.raises(RuleFileError, match=r"cannot save group 'a': its rule is a Python callable "
                                                r"\(<callable my_filter>\); only rule expressions"):
            rules_to_toml(["a", "b"], [my_filter])

    def test_invalid_rule_is_refused_on_save(self):
        with pytest.raises(ValueError, match="did you mean 'ndim'"):
            rules_to_json(["a", "b"], ["ndims == 2"])

    def test_label_count_checked_on_save(self):
        with pytest.raises(ValueError, match="Given 2 filters but 1 needed"):
            rules_to_json(["a", "b"], ["ndim == 1", "ndim == 2"])

    @pytest.mark.parametrize("text, message", [
        ("[[group]]\nlabel = 'a'\nrule = 'ndims == 2'\n[[group]]\nlabel = 'b'",
         r"the rule of group 'a' is invalid: unknown name 'ndims'; did you mean 'ndim'\?\n  ndims == 2\n  \^"),
        ("[[group]]\nlabel = 'a'\nrule = 'ndim == 2'", "is the fallback and takes no rule"),
        ("[[group]]\nlabel = 'a'\n[[group]]\nlabel = 'b'", r"group 1 of 2 \('a'\): expected a string 'rule'"),
        ("[[group]]\nrule = 'ndim == 1'\n[[group]]\nlabel = 'b'", "expected a string 'label'"),
        ("[[group]]\nlabel = 'a'\nrules = 'x'\n[[group]]\nlabel = 'b'", r"unknown keys \['rules'\]"),
        ("[[groups]]\nlabel = 'a'", "expected a list of groups under the key 'group'"),
        ("group = []", "expected a list of groups"),
        ("version = 2\n[[group]]\nlabel = 'a'", "version 2 is not supported"),
        ("colour = 1\n[[group]]\nlabel = 'a'", r"unknown top-level keys \['colour'\]"),
        ("[[group]]\nlabel = 'a'\nrule = 'ndim == 1'\n[[group]]\nlabel = 'a'", "unique"),
        ("[[group\nlabel = 'a'", "not valid TOML"),
    ])
    def test_bad_toml(self, text, message):
        with pytest.raises(RuleFileError, match=message) as info:
            rules_from_toml(text, "rules.toml")
        assert str(info.value).startswith("rules.toml")

    @pytest.mark.parametrize("text, message", [
        ("{", "not valid JSON"),
        ("[1, 2]", "found list"),
        ('{"group": [1]}', "expected a table with 'label' and 'rule', found 1"),
    ])
    def test_bad_json(self, text, message):
        with pytest.raises(RuleFileError, match=message):
            rules_from_json(text)


class CountingLabel(str):
    """A label that counts how often it is compared with another string."""

    comparisons = 0

    def __eq__(self, other):
        CountingLabel.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


class TestLinearTime:
    """Reading and writing a rule file compares each label a bounded number of times (the
    check of 61d2966 compared every label with every other one, twice per load)."""

    GROUPS = 400

    def data(self):
        labels = [CountingLabel(f"g{i}") for i in range(self.GROUPS)]
        groups = [{"label": label, "rule": f"glob('*.l{i}.*')"} for i, label in enumerate(labels[:-1])]
        return labels, {"version": 1, "group": groups + [{"label": labels[-1]}]}

    def test_reading_compares_each_label_a_bounded_number_of_times(self):
        from multiopt_lab._src.io.rulefile_data import read_groups

        labels, data = self.data()
        CountingLabel.comparisons = 0
        read, _, _ = read_groups(data, "big.toml")
        assert read == labels
        assert CountingLabel.comparisons <= 4 * self.GROUPS, CountingLabel.comparisons

    def test_writing_compares_each_label_a_bounded_number_of_times(self):
        labels, data = self.data()
        CountingLabel.comparisons = 0
        text = rules_to_toml(labels, [g["rule"] for g in data["group"][:-1]])
        assert CountingLabel.comparisons <= 4 * self.GROUPS, CountingLabel.comparisons
        assert rules_from_toml(text)[0] == labels
