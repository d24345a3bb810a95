# Tests the private modules' own units: multiopt_lab._src.live.rule_draft,
#   multiopt_lab._src.render.legend, multiopt_lab._src.render.reports,
#   multiopt_lab._src.render.text, multiopt_lab._src.render.tree_model.
"""The findings of an assignment: each kind, their one list, check() and CoverageError."""

from __future__ import annotations

import warnings

import mlx.core as mx
import mlx.optimizers as optim
import pytest

import multiopt_lab as mol
from multiopt_lab.examples import TinyMoE
from models import cnn, sequential, transformer
from multiopt_lab import CoverageError, Diagnostics, Finding, FindingWarning, assign

MUON = 'ndim == 2 and not glob("*embed*") and "lm_head" not in path'


def kinds(assignment) -> list[tuple[str, str, str]]:
    return [(f.kind, f.severity, f.group) for f in assignment.diagnostics.findings]


class TestEachFinding:
    def test_fallback_only_is_information_not_a_finding(self):
        d = assign(sequential(), ["ndim == 2"], ["muon", "adamw"]).diagnostics
        assert d.fallback_only == ("layers.0.bias", "layers.3.bias")
        assert d.fallback_label == "adamw"
        assert d.findings == () and d.is_clean

    def test_overlaps_are_notes_listing_every_matching_group(self):
        a = assign(sequential(), ['glob("layers.3.*")', "ndim == 2", "True"], ["head", "muon", "all", "rest"])
        assert a.diagnostics.overlaps == {
            "layers.0.weight": ("muon", "all"),
            "layers.3.weight": ("head", "muon", "all"),
            "layers.3.bias": ("head", "all"),
        }
        overlaps = a.diagnostics.of_kind("overlap")
        assert [(f.group, f.paths, f.severity) for f in overlaps] == [
            ("head", ("layers.3.weight", "layers.3.bias"), "note"),
            ("muon", ("layers.0.weight",), "note")]
        assert "first match wins" in overlaps[0].message and "'muon', 'all'" in overlaps[0].message

    def test_dead_rules_are_errors(self):
        a = assign(cnn(), ["ndim == 3", "ndim == 4", 'glob("*lstm*")'], ["a", "conv", "b", "rest"])
        assert a.diagnostics.dead_rules == ("a", "b")
        assert kinds(a)[:2] == [("dead_rule", "error", "a"), ("dead_rule", "error", "b")]
        assert a.diagnostics.shadowed_rules == ()

    def test_shadowed_rules_are_errors_naming_who_took_their_parameters(self):
        a = assign(transformer(), ["ndim == 2", MUON, 'name == "bias"'], ["all2d", "muon", "bias", "rest"])
        (shadowed,) = a.diagnostics.of_kind("shadowed_rule")
        assert (shadowed.group, shadowed.severity, shadowed.paths) == ("muon", "error", ())
        assert "taken by earlier rules ('all2d')" in shadowed.message
        assert shadowed.hint == "move 'muon' before 'all2d', or narrow the earlier rule"

    def test_an_empty_fallback_is_a_warning(self):
        d = assign(sequential(), ["True"], ["all", "rest"]).diagnostics
        assert [(f.kind, f.severity, f.group) for f in d.findings] == [("empty_group", "warning", "rest")]
        assert d.fallback_only == () and not d.is_clean

    def test_no_filters_everything_is_fallback(self):
        d = assign(sequential(), [], ["only"]).diagnostics
        assert len(d.fallback_only) == 4 and d.overlaps == {} and d.findings == ()

    def test_nothing_found(self):
        d = assign(sequential(), ["ndim == 2"], ["w", "rest"]).diagnostics
        # What the fallback took is information; contracts need the optimizers.
        assert str(d) == (
            "diagnostics: nothing found (no dead or shadowed rule, near miss, overlap, broken "
            "contract)\n"
            "  the fallback 'rest' took 2 parameters no rule matched:\n"
            "    layers.0.bias, layers.3.bias\n"
            "  (no optimizers given: their contracts were not checked)"
        )

    def test_str_lists_each_finding_with_its_paths_and_fix(self):
        a = assign(sequential(), ["ndim == 3", "ndim == 2", 'glob("*.3.*")'], ["dead", "w", "head", "rest"])
        assert str(a.diagnostics) == (
            "diagnostics: 1 error, 1 note\n"
            "  error: rule 'dead' (ndim == 3) matches no parameter\n"
            "    fix: compare it with the parameters' paths, shapes and module classes\n"
            "      (assignment.to_frame()), or remove the group\n"
            "  note: 1 parameter that 'w' took is also matched by later rules ('head'); the first\n"
            "    match wins, as in MLX's MultiOptimizer\n"
            "      layers.3.weight\n"
            "    fix: reorder or narrow the rules if a later one should take them\n"
            "  the fallback 'rest' took 1 parameter no rule matched:\n"
            "    layers.0.bias\n"
            "  (no optimizers given: their contracts were not checked)"
        )

    def test_errors_then_warnings_then_notes(self):
        opts = [optim.Muon(0.02), optim.AdamW(1e-3), optim.AdamW(1e-3)]
        a = assign(transformer(), ["True", "ndim == 3"], ["muon", "dead", "adamw"], optimizers=opts)
        severities = [f.severity for f in a.diagnostics.findings]
        assert severities == sorted(severities, key=("error", "warning", "note").index)
        assert a.diagnostics.errors and a.diagnostics.warnings

    def test_unknown_kind(self):
        with pytest.raises(ValueError, match="no kind of finding 'dead'; the kinds are dead_rule"):
            Diagnostics((), "x").of_kind("dead")

    def test_a_finding_has_one_of_three_severities(self):
        with pytest.raises(ValueError, match="expected a severity in"):
            Finding("overlap", "info", (), "a", "m", "h", "t")


class TestCheck:
    def test_clean_returns_the_assignment(self):
        a = assign(sequential(), ["ndim == 2", "ndim == 1"])
        with pytest.warns(FindingWarning, match="takes no parameter"):  # the fallback is empty
            assert a.check(allow_fallback=False, allow_overlap=False) is a

    def test_defaults_allow_fallback_and_overlap(self):
        a = assign(sequential(), ["ndim == 2", 'glob("*.3.*")'])
        a.check()
        with pytest.raises(CoverageError, match="allow_overlap=False"):
            a.check(allow_overlap=False)
        with pytest.raises(CoverageError, match="allow_notes=False"):
            a.check(allow_notes=False)
        with pytest.raises(CoverageError, match="allow_fallback=False"):
            a.check(allow_fallback=False)

    def test_errors_always_fail(self):
        with pytest.raises(CoverageError, match=r"error: rule 'x' \(ndim == 3\) matches no parameter"):
            assign(sequential(), ["ndim == 3"], ["x", "rest"]).check()
        with pytest.raises(CoverageError, match=r"error: rule 'late' \(ndim == 2\) is shadowed"):
            assign(sequential(), ["True", "ndim == 2"], ["all", "late", "rest"]).check()

    def test_an_optimizer_contract_broken_fails_by_default(self):
        a = assign(sequential(), ["True"], ["muon", "adamw"], optimizers=[optim.Muon(0.02), optim.AdamW(1e-3)])
        with pytest.raises(CoverageError) as info:
            a.check(allow_warnings=True)
        assert [f.kind for f in info.value.findings] == ["too_few_dims"]
        assert info.value.findings[0].paths == ("layers.0.bias", "layers.3.bias")

    def test_warnings_pass_with_a_warning_each_unless_refused(self):
        a = assign(sequential(), ["True"], ["all", "rest"])  # the fallback is empty: a warning
        with pytest.warns(FindingWarning, match="the fallback 'rest' takes no parameter") as caught:
            assert a.check() is a
        assert caught[0].message.finding.kind == "empty_group"
        with pytest.raises(CoverageError, match=r"\(allow_warnings=False\)"):
            a.check(allow_warnings=False)

    def test_error_lists_every_problem_with_the_setting_that_failed_it(self):
        a = assign(transformer(), ["ndim == 3", "ndim == 2", MUON, 'name == "bias"'],
                   ["conv", "all2d", "muon", "bias", "adamw"])
        with pytest.raises(CoverageError) as info:
            a.check(allow_fallback=False, allow_overlap=False)
        err = info.value
        assert isinstance(err, AssertionError)
        assert [f.kind for f in err.findings] == ["dead_rule", "shadowed_rule", "overlap", "fallback_only"]
        assert err.reasons == ("error", "error", "allow_overlap=False", "allow_fallback=False")
        lines = str(err).splitlines()
        assert all(len(line) <= 100 for line in lines)  # the text forms' width
        assert lines[0] == "4 problems with the parameter assignment:"
        assert lines[1] == "  - error: rule 'conv' (ndim == 3) matches no parameter"
        assert any(line.startswith("  - error: rule 'muon' (" + MUON[:20]) for line in lines)
        assert any("(allow_fallback=False)" in line and "the fallback 'adamw' took 5 parameters" in line
                   for line in lines)
        assert "layers.0.attn.q.weight" in str(err)
        assert err.diagnostics is a.diagnostics

    def test_long_lists_are_cut(self):
        params = {f"b{i}": mx.zeros((1,)) for i in range(60)}
        with pytest.raises(CoverageError, match=r"\.\.\. and 40 more"):
            assign(params, ["ndim == 2"]).check(allow_fallback=False)

    def test_callable_rules_are_described_by_name(self):
        def never(path, array):
            return False
        with pytest.raises(CoverageError, match=r"rule 'group_0' \(<callable never>\) matches no parameter"):
            assign(sequential(), [never]).check()

    def test_no_warning_without_warnings(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assign(sequential(), ["ndim == 2"]).check()


def test_diagnostics_is_a_frozen_dataclass():
    d = Diagnostics((), "x")
    with pytest.raises(AttributeError):
        d.findings = ()


class TestOneList:
    """Every surface draws its words from the same findings (issue 24: seven copies had drifted)."""

    def assignment(self):
        model = TinyMoE(16, dims=8, layers=1, experts=2)
        return mol.assign(model, ["ndim == 5", "ndim == 2"], ["conv", "muon", "adamw"],
                          optimizers=[optim.AdamW(1e-3), optim.Muon(0.02), optim.AdamW(1e-3)])

    def test_the_same_words_everywhere(self):
        from multiopt_lab._src.live.rule_draft import group_warning
        from multiopt_lab._src.render.legend import legend_html, legend_text
        from multiopt_lab._src.render.reports import diagnostics_html
        from multiopt_lab._src.render.text import tree_text
        from multiopt_lab._src.render.tree_model import build_tree

        a = self.assignment()
        findings = a.diagnostics.findings
        assert {f.kind for f in findings} >= {"dead_rule", "near_miss", "weight_decay"}
        # The text forms without a width: each finding's words on one line.
        text, legend, html = a.diagnostics.text(None), legend_text(a, width=None), diagnostics_html(a.diagnostics)
        tree = tree_text(build_tree(a, fold=False), width=None)
        legend_page = legend_html(a)
        for f in findings:
            assert f.message in legend and f.hint in legend
            assert f.message.split(":")[0] in text
            assert f.message.replace("'", "&#x27;").split(":")[0] in html
            assert f.short() in legend_page.replace("&#x27;", "'")
            if f.flagged:
                assert f.brief() in group_warning(a, f.group)
                assert tree.count(f"! {f.title}") == len(f.paths)  # a flag on each row concerned

    def test_check_and_the_error_carry_the_findings_themselves(self):
        a = self.assignment()
        with pytest.raises(CoverageError) as info:
            a.check()
        assert info.value.findings == a.diagnostics.errors
