"""Each diagnostic, Assignment.check and CoverageError."""

from __future__ import annotations

import re

import pytest

from models import cnn, sequential, transformer
from multiopt_lab.partition.assignment import CoverageError, assign
from multiopt_lab.partition.diagnostics import Diagnostics

MUON = 'ndim == 2 and not glob("*embed*") and "lm_head" not in path'


class TestEachDiagnostic:
    def test_fallback_only(self):
        d = assign(sequential(), ["ndim == 2"], ["muon", "adamw"]).diagnostics
        assert d.fallback_only == ("layers.0.bias", "layers.3.bias")
        assert d.fallback_label == "adamw"

    def test_overlaps_list_every_matching_group_winner_first(self):
        d = assign(sequential(), ['glob("layers.3.*")', "ndim == 2", "True"], ["head", "muon", "all", "rest"]).diagnostics
        assert d.overlaps == {
            "layers.0.weight": ("muon", "all"),
            "layers.3.weight": ("head", "muon", "all"),
            "layers.3.bias": ("head", "all"),
        }

    def test_dead_rules(self):
        d = assign(cnn(), ["ndim == 3", "ndim == 4", 'glob("*lstm*")'], ["a", "conv", "b", "rest"]).diagnostics
        assert d.dead_rules == ("a", "b")
        assert d.shadowed_rules == ()

    def test_shadowed_rules(self):
        d = assign(transformer(), ["ndim == 2", MUON, 'name == "bias"'], ["all2d", "muon", "bias", "rest"]).diagnostics
        assert d.shadowed_rules == ("muon",)
        assert d.dead_rules == ()
        assert "muon" in d.empty_groups

    def test_empty_groups_include_the_fallback(self):
        d = assign(sequential(), ["True"], ["all", "rest"]).diagnostics
        assert d.empty_groups == ("rest",)
        assert d.fallback_only == ()
        assert not d.is_clean  # an empty group is a likely mistake (issue 15)
        assert d.warnings() == ["empty group 'rest': no parameter goes to it"]

    def test_no_filters_everything_is_fallback(self):
        d = assign(sequential(), [], ["only"]).diagnostics
        assert len(d.fallback_only) == 4 and d.overlaps == {}

    def test_no_warnings(self):
        d = assign(sequential(), ["ndim == 2"], ["w", "rest"]).diagnostics
        assert d.is_clean and d.warnings() == []
        # What the fallback took is information, not a warning.
        assert str(d) == (
            "diagnostics: no warnings (no dead, shadowed or overlapping rule, no empty group, no near miss)\n"
            "  fallback 'rest' took 2 parameters no rule matched:\n"
            "    layers.0.bias, layers.3.bias"
        )

    def test_str_lists_each_finding(self):
        d = assign(sequential(), ["ndim == 3", "ndim == 2", 'glob("*.3.*")'], ["dead", "w", "head", "rest"]).diagnostics
        assert str(d) == (
            "diagnostics: 2 warnings\n"
            "  ! dead rule 'dead' (ndim == 3): matches no parameter\n"
            "  ! 1 parameter matched by several rules, the first wins:\n"
            "    layers.3.weight (w > head)\n"
            "  fallback 'rest' took 1 parameter no rule matched:\n"
            "    layers.0.bias"
        )


class TestCheck:
    def test_clean_returns_the_assignment(self):
        a = assign(sequential(), ["ndim == 2", "ndim == 1"])
        assert a.check(allow_fallback=False, allow_overlap=False) is a

    def test_defaults_allow_fallback_and_overlap(self):
        a = assign(sequential(), ["ndim == 2", 'glob("*.3.*")'])
        a.check()
        with pytest.raises(CoverageError, match="allow_overlap=False"):
            a.check(allow_overlap=False)
        with pytest.raises(CoverageError, match="allow_fallback=False"):
            a.check(allow_fallback=False)

    def test_dead_and_shadowed_always_fail(self):
        with pytest.raises(CoverageError, match="dead rule 'x' \\(ndim == 3\\) matches no parameter"):
            assign(sequential(), ["ndim == 3"], ["x", "rest"]).check()
        with pytest.raises(CoverageError, match="rule 'late' \\(ndim == 2\\) is shadowed"):
            assign(sequential(), ["True", "ndim == 2"], ["all", "late", "rest"]).check()

    def test_error_lists_every_problem(self):
        a = assign(transformer(), ["ndim == 3", "ndim == 2", MUON, 'name == "bias"'],
                   ["conv", "all2d", "muon", "bias", "adamw"])
        with pytest.raises(CoverageError) as info:
            a.check(allow_fallback=False, allow_overlap=False)
        err = info.value
        assert isinstance(err, AssertionError)
        assert len(err.problems) == 4
        # One bullet a problem; a long one continues on indented lines, broken between words.
        text = str(err)
        assert all(len(line) <= 100 for line in text.splitlines())
        lines = [" ".join(item.split()) for item in re.split(r"\n(?=  - )", text)]
        lines[1:] = ["  " + line for line in lines[1:]]
        assert lines[0] == "4 problems with the parameter assignment:"
        assert lines[1] == "  - dead rule 'conv' (ndim == 3) matches no parameter"
        assert lines[2].startswith("  - rule 'muon' (" + MUON + ") is shadowed")
        assert lines[3].startswith("  - 5 parameters caught by no rule, only by the fallback 'adamw'")
        assert "layers.0.attn_norm.weight" in lines[3]
        assert lines[4].startswith("  - 12 parameters matched by more than one rule, the first wins")
        assert "layers.0.attn.q.weight (all2d > muon)" in lines[4]
        assert err.diagnostics is a.diagnostics

    def test_long_lists_are_cut(self):
        params = {"w": [{"b": __import__("mlx.core").core.zeros((1,))} for _ in range(60)]}
        with pytest.raises(CoverageError, match=r"\.\.\. and 10 more"):
            assign(params, ["ndim == 2"]).check(allow_fallback=False)

    def test_callable_rules_are_described_by_name(self):
        def never(path, array):
            return False
        with pytest.raises(CoverageError, match=r"dead rule 'group_0' \(<callable never>\)"):
            assign(sequential(), [never]).check()


def test_diagnostics_is_a_frozen_dataclass():
    d = Diagnostics((), {}, (), (), (), "x")
    with pytest.raises(AttributeError):
        d.dead_rules = ("y",)
