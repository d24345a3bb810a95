"""Near misses: fallback parameters that look like what a rule took, and only those."""

from __future__ import annotations

import warnings

import mlx.core as mx
import mlx.nn as nn
import pytest

import multiopt_lab as mol
from multiopt_lab.examples import MLP, SmallCNN, TinyGPT, TinyMoE
from multiopt_lab.partition.diagnostics import NearMissWarning

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
        stacks = {p for p, kind, shape in zip(a.table.paths, a.table.module_names, a.table.shapes)
                  if kind == "SwitchLinear"}
        found = near(a)
        assert stacks and stacks <= set(found)
        assert all(label == "muon" for label, _ in found.values())
        # Each one is compared with a matrix of its own block.
        for path, (_, like) in found.items():
            assert path.split(".")[:3] == like.split(".")[:3]
        # Norms, biases, the embedding and (in DeepSeek) MLA's 3-D heads named like
        # nothing the rule took are not near misses.
        assert not any("norm" in p or "embed_tokens" in p for p in found)

    def test_a_position_embedding_beside_the_token_embedding(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        a = mol.assign(model, ['glob("embed.*")'], ["embed", "rest"])
        assert near(a) == {"position.weight": ("embed", "embed.weight")}
        (miss,) = a.diagnostics.near_misses
        assert (miss.kind, miss.like_kind) == ("Embedding [64, 8]", "Embedding [16, 8]")

    def test_without_the_model_the_same_name_and_matrices_still_count(self):
        tree = {"layers": [{"q": {"weight": mx.zeros((4, 4))}, "experts": {"weight": mx.zeros((3, 4, 4))},
                            "norm": {"weight": mx.zeros((4,))}}]}
        a = mol.assign(tree, [MATRICES], ["muon", "adamw"])
        assert near(a) == {"layers.0.experts.weight": ("muon", "layers.0.q.weight")}
        assert a.diagnostics.near_misses[0].detail == "[3, 4, 4] vs [4, 4]"

    def test_warnings_and_clean(self):
        a = mol.assign(TinyMoE(16, dims=8, layers=1, experts=2), [MATRICES], ["muon", "adamw"])
        assert not a.diagnostics.is_clean
        assert a.diagnostics.warnings()[-1].startswith("2 near misses: the fallback 'adamw'")


class TestNotFound:
    def test_an_explicit_exclusion_is_intended(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        for rule in ['ndim == 2 and not glob("*embed*")', 'ndim == 2 and module != "Embedding"',
                     'ndim == 2 and "embed" not in path']:
            a = mol.assign(model, [rule], ["muon", "adamw"])
            assert "embed.weight" in a.paths_of("adamw") and near(a) == {}, rule

    def test_other_blocks_are_not_neighbours(self):
        # The head is a Linear like the layers the rule took, but outside them.
        a = mol.assign(MLP(8, [8, 8], 4), ['glob("layers.*") and ndim == 2'], ["muon", "adamw"])
        assert "head.weight" in a.paths_of("adamw") and near(a) == {}

    def test_same_shaped_siblings_told_apart_by_name_on_purpose(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        a = mol.assign(model, ['glob("*.attn.q.*") or glob("*.attn.k.*")'], ["qk", "rest"])
        assert near(a) == {}  # v and o have q's shape: the rule picked by name

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


class TestCheck:
    def moe(self):
        return mol.assign(TinyMoE(16, dims=8, layers=1, experts=2), [MATRICES], ["muon", "adamw"])

    def test_allowed_by_default_with_a_warning_that_names_them(self):
        with pytest.warns(NearMissWarning, match=r"layers\.0\.moe\.experts\.up\.weight \(SwitchLinear"):
            assert self.moe().check() is not None

    def test_an_error_on_request(self):
        with pytest.raises(mol.CoverageError, match="allow_near_misses=False"):
            self.moe().check(allow_near_misses=False)

    def test_no_warning_without_near_misses(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            mol.assign(nn.Linear(2, 2), [MATRICES]).check()
