"""Recipes on the bundled models and on mlx-lm architectures: the split they document, no
warning, and training bit-identical to MLX's MultiOptimizer given equivalent callables."""

from __future__ import annotations

import copy
import fnmatch
import re

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_map

import multiopt_lab as mol
from multiopt_lab import recipes
from multiopt_lab.examples import MLP, SmallCNN, TinyGPT, TinyMoE

pytest.importorskip("mlx_lm")
import mlx_lm_models  # noqa: E402  (needs mlx_lm)


# -- the models, with a batch and a loss each ----------------------------------------------------
def _tokens_loss(model, x):
    logits = model(x[:, :-1])
    return nn.losses.cross_entropy(logits, x[:, 1:], reduction="mean")


BUNDLED = {
    "MLP": (lambda: MLP(8, [8, 8], 4, norm=True), lambda: mx.ones((3, 8)),
            lambda m, x: (m(x) ** 2).mean()),
    "SmallCNN": (SmallCNN, lambda: mx.ones((2, 8, 8, 1)), lambda m, x: (m(x) ** 2).mean()),
    "TinyGPT": (lambda: TinyGPT(16, dims=8, layers=2, heads=2), lambda: mx.arange(12).reshape(2, 6) % 16,
                _tokens_loss),
    "TinyMoE": (lambda: TinyMoE(16, dims=8, layers=2, experts=2), lambda: mx.arange(12).reshape(2, 6) % 16,
                _tokens_loss),
}
MODELS = list(BUNDLED) + list(mlx_lm_models.ALL)


def build(name):
    mx.random.seed(0)
    if name in BUNDLED:
        make, batch, loss = BUNDLED[name]
        model = make()
        mx.eval(model.parameters())
        return model, batch(), loss
    return mlx_lm_models.build(name), mlx_lm_models.tokens(), mlx_lm_models.loss_fn


# -- what each recipe is documented to do, written independently of its code ------------------
def holders(model) -> dict[str, str]:
    """path -> class of the module holding it, from MLX's named_modules."""
    modules = dict(model.named_modules())
    return {p: type(modules[p.rpartition(".")[0]]).__name__ for p, _ in tree_flatten(model.trainable_parameters())}


def block_prefix(model) -> str | None:
    for prefix in ("model.layers.", "layers."):
        if any(p.startswith(prefix) for p, _ in tree_flatten(model.parameters())):
            return prefix
    return None


ROUTER = re.compile(r"\.(block_sparse_moe|mlp|moe)\.gate\.[^.]+$")


def expected_muon(model) -> list[set[str]]:
    kinds, prefix = holders(model), block_prefix(model)
    params = dict(tree_flatten(model.trainable_parameters()))
    head = "head." if prefix is None else None
    chosen = set()
    for path, kind in kinds.items():
        ndim = params[path].ndim
        inside = path.startswith(prefix) if prefix else not path.startswith(head)
        matrix = (ndim == 2 and kind in ("Linear", "LoRALinear")
                  or ndim == 3 and kind in ("SwitchLinear", "MultiLinear", "LoRASwitchLinear")
                  or ndim >= 4 and kind in ("Conv2d", "Conv3d"))
        if inside and matrix and not ROUTER.search(path):
            chosen.add(path)
    return [chosen]


def expected_no_decay(model) -> list[set[str]]:
    params = dict(tree_flatten(model.trainable_parameters()))
    return [{p for p, kind in holders(model).items() if params[p].ndim <= 1 or kind.endswith("Embedding")}]


def expected_lora_b(model) -> list[set[str]]:
    return [{p for p in holders(model) if p.endswith(".lora_b")}]


def expected_levels(model) -> list[set[str]]:
    kinds, prefix = holders(model), block_prefix(model)
    paths = list(kinds)
    levels = []
    embed = {p for p in paths if not p.startswith(prefix) and kinds[p].endswith("Embedding")}
    if embed:
        levels.append(embed)
    indices = sorted({int(p[len(prefix):].split(".")[0]) for p in paths if p.startswith(prefix)})
    levels += [{p for p in paths if p.startswith(f"{prefix}{i}.")} for i in indices]
    top = set(paths).difference(*levels)
    # The top level is the fallback; when nothing trains there (LoRA), the last block is.
    return levels if top else levels[:-1]


def cnn_levels(model) -> list[set[str]]:
    paths = list(holders(model))
    return [{p for p in paths if p.startswith(c + ".")} for c in ("conv1", "conv2")]


RECIPES = {
    "muon": (lambda m: recipes.muon(m), expected_muon),
    "no_weight_decay": (lambda m: recipes.no_weight_decay(m, optim.AdamW(1e-2, weight_decay=0.1)),
                        expected_no_decay),
    "lora_plus": (lambda m: recipes.lora_plus(m, optim.AdamW(1e-3), ratio=16), expected_lora_b),
    "layerwise_lr_decay": (lambda m: recipes.layerwise_lr_decay(m, optim.AdamW(1e-2), decay=0.5),
                           expected_levels),
}

# Where a recipe does not fit, it refuses (a group would be empty) instead of building a split
# that warns: LoRA+ without LoRA layers; Muon and no-weight-decay when only adapters train.
ADAPTERS_ONLY = ("llama+lora", "llama+qlora")
REFUSED = {("lora_plus", m) for m in MODELS if "lora" not in m}
REFUSED |= {("muon", m) for m in ADAPTERS_ONLY} | {("no_weight_decay", m) for m in mlx_lm_models.ADAPTED}


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_split_is_documented_quiet_and_trains_like_mlx(recipe, model_name):
    model, batch, loss = build(model_name)
    make, expected = RECIPES[recipe]
    if (recipe, model_name) in REFUSED:
        with pytest.raises(ValueError, match=r"would be empty|no trainable lora_b"):
            make(model)
        return
    optimizer = make(model)
    assignment = optimizer.assign(model)
    # Rule texts, not callables: they show in the tree, the editor, TOML and checkpoints.
    assert all(r.text for r in optimizer.filters)
    assert assignment.diagnostics.is_clean, str(assignment.diagnostics)
    assert "!" not in mol.render_text(assignment)
    groups = expected(model) if not (recipe == "layerwise_lr_decay" and model_name == "SmallCNN") \
        else cnn_levels(model)
    assert [set(assignment.paths_of(label)) for label in optimizer.labels[:-1]] == groups

    # MLX's own MultiOptimizer with callables picking the same parameters, and copies of
    # the same sub-optimizers, trains to the same bits.
    callables = [lambda path, _array, members=members: path in members for members in groups]
    theirs = optim.MultiOptimizer([copy.deepcopy(o) for o in optimizer.optimizers], callables)
    twin, _, _ = build(model_name)  # the same seeded model
    assert all(np.array_equal(np.array(a), np.array(b)) for (_, a), (_, b) in
               zip(tree_flatten(model.parameters()), tree_flatten(twin.parameters())))
    for _ in range(2):
        for m, opt in ((model, optimizer), (twin, theirs)):
            _, grads = nn.value_and_grad(m, loss)(m, batch)
            opt.update(m, grads)
            mx.eval(m.parameters(), opt.state)
    ours, reference = dict(tree_flatten(model.parameters())), dict(tree_flatten(twin.parameters()))
    assert ours.keys() == reference.keys()
    for path in ours:
        assert np.array_equal(np.array(ours[path]), np.array(reference[path])), path


class TestMuon:
    def test_groups_and_defaults(self):
        optimizer = recipes.muon(TinyGPT(16, dims=8, layers=2, heads=2))
        assert optimizer.labels == ("muon", "adamw")
        assert type(optimizer.optimizers[0]) is recipes.StackedMuon
        assert optimizer.optimizers[0].learning_rate.item() == pytest.approx(0.02)
        assert type(optimizer.optimizers[1]) is optim.AdamW

    def test_the_position_embedding_stays_on_adamw(self):
        # The README's old rule `ndim == 2 and not glob("*embed*")` sent it to Muon.
        model = TinyGPT(16, dims=8, layers=2, heads=2)
        assert "position.weight" in recipes.muon(model).assign(model).paths_of("adamw")

    def test_expert_stacks_go_to_muon_and_router_gates_to_adamw(self):
        model = mlx_lm_models.build("mixtral")
        a = recipes.muon(model).assign(model)
        muon_paths = a.paths_of("muon")
        assert "model.layers.0.block_sparse_moe.switch_mlp.up_proj.weight" in muon_paths
        assert "model.layers.0.block_sparse_moe.gate.weight" in a.paths_of("adamw")
        assert a.summary().loc["muon", "share"] > 0.5  # the stacks are most of the values

    def test_plain_mlx_muon_is_refused_for_expert_stacks_and_fine_otherwise(self):
        with pytest.raises(ValueError, match="orthogonalise them reshaped to \\(experts, out \\* in\\)"):
            recipes.muon(mlx_lm_models.build("qwen3_moe"), muon=optim.Muon(0.02))
        dense = recipes.muon(mlx_lm_models.build("llama"), muon=optim.Muon(0.05), adamw=optim.Adam(1e-3))
        assert type(dense.optimizers[0]) is optim.Muon and dense.labels == ("muon", "adamw")

    def test_adapters_only_is_refused_with_what_to_do(self):
        with pytest.raises(ValueError, match="'adamw' would be empty.*unfreeze the norms"):
            recipes.muon(mlx_lm_models.build("llama+lora"))

    def test_lora_with_trainable_norms(self):
        model = mlx_lm_models.build("llama+lora")
        for _, module in model.named_modules():
            if isinstance(module, nn.RMSNorm):
                module.unfreeze()
        a = recipes.muon(model).assign(model)
        assert a.diagnostics.is_clean
        assert {p.rpartition(".")[2] for p in a.paths_of("muon")} == {"lora_a", "lora_b"}
        assert all(p.endswith("norm.weight") or "layernorm" in p for p in a.paths_of("adamw"))

    def test_a_used_optimizer_is_refused(self):
        used = optim.AdamW(1e-3)
        used.init({"w": mx.zeros((2,))})
        with pytest.raises(ValueError, match="already holds state"):
            recipes.muon(TinyGPT(16, dims=8, layers=1, heads=2), adamw=used)

    def test_needs_the_model(self):
        with pytest.raises(TypeError, match="model must be an mlx.nn.Module"):
            recipes.muon(TinyGPT(16, dims=8, layers=1, heads=2).parameters())


class TestStackedMuon:
    def test_two_dimensional_updates_are_mlx_muon_bit_for_bit(self):
        w, g = mx.random.normal((6, 4)), mx.random.normal((6, 4))
        ours = recipes.StackedMuon(0.02).apply_gradients({"w": g}, {"w": w})["w"]
        theirs = optim.Muon(0.02).apply_gradients({"w": g}, {"w": w})["w"]
        assert np.array_equal(np.array(ours), np.array(theirs))

    @pytest.mark.parametrize("shape", [(3, 8, 5), (2, 4, 9)])
    def test_each_expert_is_orthogonalised_alone(self, shape):
        mx.random.seed(1)
        w, g = mx.random.normal(shape), mx.random.normal(shape)
        stacked = recipes.StackedMuon(0.02, weight_decay=0.1)
        new = stacked.apply_gradients({"w": g}, {"w": w})["w"]
        for e in range(shape[0]):
            alone = optim.Muon(0.02, weight_decay=0.1).apply_gradients({"w": g[e]}, {"w": w[e]})["w"]
            assert np.allclose(np.array(new[e]), np.array(alone), atol=1e-5)
        flat = optim.Muon(0.02, weight_decay=0.1).apply_gradients({"w": g}, {"w": w})["w"]
        assert not np.allclose(np.array(new), np.array(flat), atol=1e-4)  # MLX's mixes experts

    def test_momentum_state_is_per_element_as_in_muon(self):
        opt = recipes.StackedMuon(0.02)
        params = {"w": mx.random.normal((2, 3, 3))}
        for _ in range(2):
            params = opt.apply_gradients({"w": mx.ones((2, 3, 3))}, params)
        assert opt.state["w"]["v"].shape == (2, 3, 3)


class TestNoWeightDecay:
    def test_the_exempt_copy_has_no_decay_and_the_rest_keeps_it(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        optimizer = recipes.no_weight_decay(model, optim.AdamW(1e-3, weight_decay=0.1))
        assert optimizer.labels == ("no_decay", "decay")
        assert [o.weight_decay for o in optimizer.optimizers] == [0.0, 0.1]
        assert optimizer.filters[0].text == 'ndim <= 1 or module == "Embedding"'

    def test_embeddings_false_follows_nanogpt(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        a = recipes.no_weight_decay(model, optim.AdamW(1e-3), embeddings=False).assign(model)
        assert "embed.weight" in a.paths_of("decay")

    @pytest.mark.parametrize("optimizer, message", [
        (optim.Adam(1e-3), "Adam has no weight decay"),
        (optim.AdamW(1e-3, weight_decay=0.0), "weight_decay=0 already"),
        ("adamw", "optimizer must be an optimizer .*, found str"),
    ])
    def test_bad_optimizers(self, optimizer, message):
        with pytest.raises((ValueError, TypeError), match=message):
            recipes.no_weight_decay(MLP(4, 4, 2), optimizer)


class TestLoraPlus:
    def test_b_learns_ratio_times_faster_and_a_schedule_is_scaled(self):
        model = mlx_lm_models.build("llama+lora")
        schedule = optim.cosine_decay(1e-3, 100)
        optimizer = recipes.lora_plus(model, optim.AdamW(schedule), ratio=8)
        assert optimizer.labels == ("lora_b", "rest")
        b, a = optimizer.optimizers
        zeros = tree_map(mx.zeros_like, model.trainable_parameters())
        for _ in range(11):  # MLX sets a scheduled rate from the step count, then counts the step
            optimizer.update(model, zeros)
        rates = optimizer.learning_rates
        assert rates["lora_b"] == pytest.approx(8 * schedule(mx.array(10)).item())
        assert rates["rest"] == pytest.approx(schedule(mx.array(10)).item())
        assert optimizer.filters[0].text == 'name == "lora_b" and module == "LoRALinear"'

    @pytest.mark.parametrize("ratio", [0, -1, float("inf"), float("-inf"), float("nan")])
    def test_ratio_must_be_finite_and_positive(self, ratio):
        # ratio=inf was accepted and the next step was non-finite
        with pytest.raises(ValueError, match="ratio must be a finite number > 0"):
            recipes.lora_plus(mlx_lm_models.build("llama+lora"), optim.AdamW(1e-3), ratio=ratio)

    @pytest.mark.parametrize("ratio", [True, "16", None])
    def test_ratio_must_be_a_number(self, ratio):
        with pytest.raises(TypeError, match="ratio must be a number"):
            recipes.lora_plus(mlx_lm_models.build("llama+lora"), optim.AdamW(1e-3), ratio=ratio)

    def test_a_ratio_whose_learning_rate_overflows_is_refused(self):
        with pytest.raises(ValueError, match="which no step can use"):
            recipes.lora_plus(mlx_lm_models.build("llama+lora"), optim.AdamW(1e-3), ratio=1e300)


class TestLayerwiseDecay:
    def test_rates_shrink_towards_the_input(self):
        model = mlx_lm_models.build("qwen3")
        optimizer = recipes.layerwise_lr_decay(model, optim.AdamW(1e-3), decay=0.8)
        assert optimizer.labels == ("embed", "block_0", "block_1", "top")
        rates = [o.learning_rate.item() for o in optimizer.optimizers]
        assert rates == pytest.approx([1e-3 * 0.8 ** 3, 1e-3 * 0.8 ** 2, 1e-3 * 0.8, 1e-3])
        assert optimizer.filters[1].text == 'glob("model.layers.0.*")'

    def test_frozen_levels_are_left_out_and_the_highest_left_is_the_fallback(self):
        optimizer = recipes.layerwise_lr_decay(mlx_lm_models.build("llama+lora"), optim.AdamW(1e-3), 0.5)
        assert optimizer.labels == ("block_0", "block_1")
        assert [o.learning_rate.item() for o in optimizer.optimizers] == pytest.approx([5e-4, 1e-3])

    @pytest.mark.parametrize("decay", [0, 1.5, -0.2, float("nan"), float("inf")])
    def test_decay_in_range(self, decay):
        with pytest.raises(ValueError, match="decay must be a finite number > 0 and <= 1"):
            recipes.layerwise_lr_decay(TinyGPT(16, dims=8, layers=1, heads=2), optim.AdamW(1e-3), decay)

    @pytest.mark.parametrize("decay", ["0.8", None, True])
    def test_decay_must_be_a_number(self, decay):
        with pytest.raises(TypeError, match="decay must be a number"):
            recipes.layerwise_lr_decay(TinyGPT(16, dims=8, layers=1, heads=2), optim.AdamW(1e-3), decay)

    def test_one_level_is_refused(self):
        with pytest.raises(ValueError, match="decay needs two or more"):
            recipes.layerwise_lr_decay(nn.Linear(2, 2), optim.AdamW(1e-3))


def test_rule_texts_survive_a_rule_file_round_trip(tmp_path):
    model = mlx_lm_models.build("mixtral")
    optimizer = recipes.muon(model)
    mol.save_rules(tmp_path / "rules.toml", optimizer.labels, optimizer.filters)
    labels, rules = mol.load_rules(tmp_path / "rules.toml")
    assert tuple(labels) == optimizer.labels and [r.text for r in rules] == [r.text for r in optimizer.filters]
    assert mol.assign(model, rules, labels).labels == optimizer.assign(model).labels
    assert fnmatch.fnmatch(rules[0].text, 'within("MixtralDecoderLayer") and *')
