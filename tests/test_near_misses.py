"""Near misses: fallback parameters that look like what a rule took, on the parameter likely
wrong, whatever way the rule is written."""

from __future__ import annotations

import warnings

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest

import multiopt_lab as mol
from multiopt_lab.examples import MLP, SmallCNN, TinyGPT, TinyMoE

pytest.importorskip("mlx_lm")
import mlx_lm_models  # noqa: E402  (needs mlx_lm)

MATRICES = "ndim == 2"


def near(assignment) -> dict[str, tuple[str, str]]:
    return {m.path: (m.label, m.like) for m in assignment.diagnostics.near_misses}


class TestFound:
    @pytest.mark.parametrize("name", mlx_lm_models.MOE)
    def test_expert_stacks_beside_the_matrices_a_rule_took(self, name):
        model = mlx_lm_models.build(name)
        a = mol.assign(model, [MATRICES], ["muon", "adamw"])
        stacks = {p for p, kind in zip(a.table.paths, a.table.module_names) if kind == "SwitchLinear"}
        found = near(a)
        assert stacks and stacks <= set(found)
        assert all(label == "muon" for label, _ in found.values())
        # Each one is compared with a matrix of its own block.
        for path, (_, like) in found.items():
            assert path.split(".")[:3] == like.split(".")[:3]
        # Norms, biases and the embedding are not near misses.
        assert not any("norm" in p or "embed_tokens" in p for p in found)
        (finding,) = a.diagnostics.of_kind("near_miss")
        assert finding.severity == "warning" and finding.group == "adamw"
        assert set(finding.paths) == set(found)
        assert 'module == "SwitchLinear"' in finding.hint or 'module in (' in finding.hint

    def test_without_the_model_the_same_name_and_matrices_still_count(self):
        tree = {"layers": [{"q": {"weight": mx.zeros((4, 4))}, "experts": {"weight": mx.zeros((3, 4, 4))},
                            "norm": {"weight": mx.zeros((4,))}}]}
        a = mol.assign(tree, [MATRICES], ["muon", "adamw"])
        assert near(a) == {"layers.0.experts.weight": ("muon", "layers.0.q.weight")}
        assert a.diagnostics.near_misses[0].detail == "[3, 4, 4] vs [4, 4]"
        assert "`or ndim == 3`" in a.diagnostics.of_kind("near_miss")[0].hint

    def test_a_warning(self):
        a = mol.assign(TinyMoE(16, dims=8, layers=1, experts=2), [MATRICES], ["muon", "adamw"])
        assert not a.diagnostics.is_clean
        assert [f.kind for f in a.diagnostics.warnings] == ["near_miss"]
        assert a.diagnostics.warnings[0].message.startswith("the fallback 'adamw' took 2 parameters that look like")


class TestOnTheLikelyWrongParameter:
    """Issue 24, item 3: near misses depended on how a rule was written, and landed on the
    parameters placed right."""

    def test_qwen3_attn_callable_flags_no_correctly_placed_norm(self):
        # `"attn" in path` takes q_norm/k_norm (inside self_attn) but not input_layernorm: the
        # norms the fallback took are where they belong.
        model = mlx_lm_models.build("qwen3")
        a = mol.assign(model, [lambda path, array: "attn" in path], ["muon", "adamw"])
        assert near(a) == {}

    def test_qwen3_attn_with_muon_lands_on_the_misplaced_norms(self):
        model = mlx_lm_models.build("qwen3")
        optimizer = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)],
                                       [lambda path, array: "attn" in path], labels=["muon", "adamw"])
        d = optimizer.assign(model).diagnostics
        assert d.near_misses == ()
        flagged = {p for f in d.findings if f.flagged for p in f.paths}
        assert flagged == {f"model.layers.{i}.self_attn.{n}.weight" for i in (0, 1) for n in ("q_norm", "k_norm")}

    @pytest.mark.parametrize("rule", [
        '(module == "Linear" and not glob("*.mlp.gate.*")) or module == "SwitchLinear"',
        '(module == "Linear" or module == "SwitchLinear") and not glob("*.mlp.gate.*")',
    ])
    def test_qwen3_moe_router_gates_excluded_by_name_are_intended(self, rule):
        model = mlx_lm_models.build("qwen3_moe")
        a = mol.assign(model, [rule], ["muon", "adamw"])
        assert "model.layers.0.mlp.gate.weight" in a.paths_of("adamw")
        assert near(a) == {}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            a.check(allow_near_misses=False)

    def test_an_embedding_left_on_muon_is_the_finding_not_the_one_excluded(self):
        # `not glob("*embed*")` misses TinyGPT's position embedding: the finding lands on it.
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        optimizer = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)],
                                       ['ndim == 2 and not glob("*embed*")'], labels=["muon", "adamw"])
        d = optimizer.assign(model).diagnostics
        assert d.near_misses == ()
        (wrong,) = d.of_kind("embedding_or_head")
        assert wrong.paths == ("position.weight",) and wrong.group == "muon"


class TestNotFound:
    def test_an_explicit_exclusion_of_every_look_alike_is_clean(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        for rule in ['ndim == 2 and module != "Embedding"', 'ndim == 2 and not glob("embed.*") and not glob("position.*")']:
            a = mol.assign(model, [rule], ["muon", "adamw"])
            assert "embed.weight" in a.paths_of("adamw") and near(a) == {}, rule

    def test_look_alikes_picked_by_name_are_intended(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        for rule in ['glob("embed.*")', 'ndim == 2 and not glob("*embed*")', 'ndim == 2 and "embed" not in path']:
            a = mol.assign(model, [rule], ["a", "b"])
            assert near(a) == {}, rule

    def test_other_blocks_are_not_neighbours(self):
        # The head is a Linear like the layers the rule took, but outside them.
        a = mol.assign(MLP(8, [8, 8], 4), ['glob("layers.*") and ndim == 2'], ["muon", "adamw"])
        assert "head.weight" in a.paths_of("adamw") and near(a) == {}

    def test_same_shaped_siblings_told_apart_by_name_on_purpose(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        a = mol.assign(model, ['glob("*.attn.q.*") or glob("*.attn.k.*")'], ["qk", "rest"])
        assert near(a) == {}  # v and o have q's shape: the rule picked by name

    def test_a_rule_that_picked_by_name_also_leaves_other_forms(self):
        # Attention only: the fallback keeps MLP matrices of the very form the rule took, so
        # the expert stacks beside them were left on purpose too.
        model = mlx_lm_models.build("qwen3_moe")
        a = mol.assign(model, ['module == "Linear" and glob("*self_attn*")'], ["attn", "rest"])
        assert near(a) == {}

    def test_intended_fallbacks_on_bundled_models(self):
        for model, rule in [(TinyGPT(16, dims=8, layers=2, heads=2), 'within("Block") and ndim == 2'),
                            (SmallCNN(), "ndim == 4"), (MLP(8, [8], 4, norm=True), MATRICES)]:
            a = mol.assign(model, [rule], ["a", "b"])
            assert near(a) == {}, (type(model).__name__, a.diagnostics)

    def test_recipes_leave_none(self):
        for name in mlx_lm_models.MOE + ("mixtral+lora",):
            model = mlx_lm_models.build(name)
            assert mol.recipes.muon(model).assign(model).diagnostics.near_misses == (), name

    def test_no_fallback_nothing_to_miss(self):
        assert near(mol.assign(TinyMoE(16, dims=8, layers=1, experts=2), ["True"], ["all", "rest"])) == {}

    def test_a_parameter_the_rules_optimizer_cannot_train_is_no_near_miss(self):
        from multiopt_lab import OptimizerContract, declare_contract

        class StacksOnly(optim.SGD):
            pass

        declare_contract(StacksOnly, OptimizerContract(min_ndim=3, below_min_ndim="fails"))
        tree = {"layers": [{"experts": {"weight": mx.zeros((2, 4, 4))}, "q": {"weight": mx.zeros((4, 4))}}]}
        rules, labels = ["ndim == 3"], ["stacks", "rest"]
        assert near(mol.assign(tree, rules, labels)) == {"layers.0.q.weight": ("stacks", "layers.0.experts.weight")}
        a = mol.assign(tree, rules, labels, optimizers=[StacksOnly(0.1), optim.SGD(0.1)])
        assert near(a) == {}  # the fallback is right to keep a matrix this optimizer cannot train


class TestCheck:
    def moe(self):
        return mol.assign(TinyMoE(16, dims=8, layers=1, experts=2), [MATRICES], ["muon", "adamw"])

    def test_allowed_by_default_with_a_warning_that_names_them(self):
        with pytest.warns(mol.FindingWarning, match=r"layers\.0\.moe\.experts\.up\.weight"):
            assert self.moe().check() is not None

    def test_an_error_on_request(self):
        with pytest.raises(mol.CoverageError, match="allow_near_misses=False"):
            self.moe().check(allow_near_misses=False)

    def test_no_warning_without_near_misses(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            mol.assign(nn.Linear(2, 2), [MATRICES]).check()
