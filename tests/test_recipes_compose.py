"""Recipes attacked with models and arguments their first tests had not seen, and composed.

Labels made from child names (a child called ``total``, a class ``Classifier``
with a child ``classifier``, names holding glob characters or line breaks),
``muon`` on an ``nn.Sequential`` MLP (the output layer is the head: AdamW) and
on blocks whose class name is not an identifier, numeric arguments that are
not finite, a fresh MultiOptimizer given as a recipe's optimizer; and recipes
composed, bit for bit equal to the same groups built by hand.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest

import multiopt_lab as mol
from multiopt_lab import recipes
from multiopt_lab.examples import TinyGPT
from trees import assert_identical


class TotalNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.total = nn.Linear(4, 4)
        self.other = nn.Linear(4, 2)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(4, 2)
        self.scale = mx.ones((4,))  # a parameter of the model itself

    def __call__(self, x):
        return self.classifier(x * self.scale)


class TestLabelsFromChildNames:
    def test_a_child_named_total(self):
        model = TotalNet()
        optimizer = recipes.layerwise_lr_decay(model, optim.AdamW(1e-3), decay=0.5)
        assert optimizer.labels == ("total_group", "other")
        assert optimizer.assign(model).paths_of("total_group") == ("total.weight", "total.bias")

    def test_a_class_named_like_its_child(self):
        model = Classifier()
        optimizer = recipes.layerwise_lr_decay(model, optim.AdamW(1e-3), decay=0.5)
        assert optimizer.labels == ("classifier", "classifier_2")
        assert optimizer.assign(model).labels == {"classifier.weight": "classifier",
                                                  "classifier.bias": "classifier",
                                                  "scale": "classifier_2"}

    def test_child_names_with_glob_characters_match_only_themselves(self):
        model = nn.Module()
        for name in ("a*", "ab", "x[1]", "x1", "q?"):
            model[name] = nn.Linear(2, 2)
        optimizer = recipes.layerwise_lr_decay(model, optim.SGD(0.1), decay=0.5)
        labels = optimizer.assign(model).labels
        assert all(labels[path] == path.rpartition(".")[0] for path in labels), labels
        # the rules parse back from their own text (what a rule file or the editor holds)
        assert all(mol.rule(rule.text).text == rule.text for rule in optimizer.filters)


class TestMuonFindsTheHead:
    def test_sequential_mlp(self):
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        labels = recipes.muon(model).assign(model).labels
        assert labels["layers.0.weight"] == labels["layers.2.weight"] == "muon"
        assert labels["layers.4.weight"] == "adamw"  # the head, as the docstring says

    def test_a_list_of_linear_layers(self):
        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = [nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2)]

        labels = recipes.muon(MLP()).assign(MLP()).labels
        assert [labels[f"layers.{i}.weight"] for i in range(3)] == ["muon", "muon", "adamw"]

    def test_blocks_then_a_head_in_one_list(self):
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.up, self.down = nn.Linear(4, 8), nn.Linear(8, 4)

        model = nn.Sequential(Block(), Block(), nn.Linear(4, 2))
        labels = recipes.muon(model).assign(model).labels
        assert labels["layers.0.up.weight"] == labels["layers.1.down.weight"] == "muon"
        assert labels["layers.2.weight"] == "adamw"

    def test_a_block_class_whose_name_is_not_an_identifier(self):
        def init(self):
            nn.Module.__init__(self)
            self.proj = nn.Linear(4, 4)

        block = type("My-Block", (nn.Module,), {"__init__": init})
        model = nn.Module()
        model["embed"] = nn.Embedding(10, 4)
        model["layers"] = [block(), block()]
        model["head"] = nn.Linear(4, 10)
        optimizer = recipes.muon(model)
        text = optimizer.filters[0].text
        assert mol.rule(text).text == text  # its own parser takes it
        assert optimizer.assign(model).paths_of("muon") == ("layers.0.proj.weight",
                                                            "layers.1.proj.weight")


class TestNumbers:
    @pytest.mark.parametrize("ratio", [float("inf"), float("nan"), 0, -2])
    def test_lora_plus_ratio(self, ratio):
        import mlx_lm_models

        with pytest.raises(ValueError, match="ratio must be a finite number > 0"):
            recipes.lora_plus(mlx_lm_models.build("llama+lora"), optim.AdamW(1e-3), ratio=ratio)

    @pytest.mark.parametrize("decay", [float("nan"), float("inf"), 0.0, 1.5])
    def test_layerwise_decay(self, decay):
        with pytest.raises(ValueError, match="decay must be a finite number > 0 and <= 1"):
            recipes.layerwise_lr_decay(TinyGPT(16, dims=8, layers=2, heads=2), optim.AdamW(1e-3),
                                       decay=decay)

    def test_a_learning_rate_that_underflows(self):
        with pytest.raises(ValueError, match="which no step can use"):
            recipes.layerwise_lr_decay(TinyGPT(16, dims=8, layers=40, heads=2), optim.AdamW(1e-30),
                                       decay=0.01)


class TestMultiOptimizerGiven:
    def test_a_fresh_one_is_accepted(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        given = mol.MultiOptimizer([optim.AdamW(1e-3, weight_decay=0.1)])
        optimizer = recipes.no_weight_decay(model, given)
        assert optimizer.labels == ("adamw/no_decay", "adamw/decay")

    def test_one_that_stepped_is_refused_for_that_reason(self):
        model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        given = mol.MultiOptimizer([optim.AdamW(1e-3)])
        given.init(model.trainable_parameters())
        with pytest.raises(ValueError, match="optimizer's group 'adamw'.*already holds state"):
            recipes.no_weight_decay(model, given)


# -- composed recipes equal the same groups built by hand, bit for bit -----------------------

def gpt():
    mx.random.seed(1)
    model = TinyGPT(32, dims=16, layers=2, heads=2, tie_embeddings=False)  # a head to decay
    mx.eval(model.parameters())
    return model


def train_three_steps(model, optimizer):
    tokens = (mx.arange(24).reshape(2, 12) * 5) % 32

    def loss(m):
        logits = m(tokens[:, :-1])
        return nn.losses.cross_entropy(logits, tokens[:, 1:]).mean()

    for _ in range(3):
        grads = nn.value_and_grad(model, loss)(model)[1]
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state)


def assert_same_training(composed, by_hand):
    assert composed.labels == by_hand.labels
    assert [r.text for r in composed.filters] == [r.text for r in by_hand.filters]
    a, b = gpt(), gpt()
    train_three_steps(a, composed)
    train_three_steps(b, by_hand)
    assert_identical(a.parameters(), b.parameters())
    assert_identical(composed.state["states"], by_hand.state["states"])


NO_DECAY = 'ndim <= 1 or module == "Embedding"'
BLOCKS = ['glob("layers.0.*")', 'glob("layers.1.*")']


def adamw(lr=1e-3, wd=0.1):
    return optim.AdamW(lr, weight_decay=wd)


def test_layerwise_decay_of_no_weight_decay():
    composed = recipes.layerwise_lr_decay(gpt(), recipes.no_weight_decay(gpt(), adamw()), decay=0.5)
    embed, *blocks = [r.text for r in recipes.layerwise_lr_decay(gpt(), adamw()).filters]
    assert blocks == BLOCKS
    rate = adamw().learning_rate.item()  # what a copy scales: the rate as MLX holds it
    factors = [0.125, 0.25, 0.5, 1.0]
    by_hand = mol.MultiOptimizer(
        [adamw(rate * f, 0.0) for f in factors] + [adamw(rate * f) for f in factors[1:]],
        [f"({NO_DECAY}) and {level}" for level in [embed, *BLOCKS]] + [NO_DECAY] + BLOCKS,
        labels=["no_decay/embed", "no_decay/block_0", "no_decay/block_1", "no_decay/top",
                "decay/block_0", "decay/block_1", "decay/top"])
    assert_same_training(composed, by_hand)


def test_no_weight_decay_of_muon():
    model = gpt()
    muon_rule = recipes.muon(model).filters[0].text
    composed = recipes.no_weight_decay(model, recipes.muon(model))
    by_hand = mol.MultiOptimizer(
        [recipes.StackedMuon(0.02), optim.AdamW(1e-3, weight_decay=0.0), optim.AdamW(1e-3)],
        [muon_rule, NO_DECAY], labels=["muon/decay", "adamw/no_decay", "adamw/decay"])
    assert_same_training(composed, by_hand)


def test_muon_with_no_decay_on_its_norms():
    model = gpt()
    muon_rule = recipes.muon(model).filters[0].text
    composed = recipes.muon(model, adamw=recipes.no_weight_decay(model, adamw()))
    by_hand = mol.MultiOptimizer([recipes.StackedMuon(0.02), adamw(wd=0.0), adamw()],
                                 [muon_rule, NO_DECAY],
                                 labels=["muon", "adamw/no_decay", "adamw/decay"])
    assert_same_training(composed, by_hand)


def test_the_given_optimizer_settings_carry_over():
    given = recipes.no_weight_decay(gpt(), adamw())
    given.metrics_every = 2
    composed = recipes.layerwise_lr_decay(gpt(), given)
    assert composed.metrics_every == 2


def test_splits_left_empty_are_left_out_and_the_last_group_is_the_fallback():
    model = TinyGPT(32, dims=16, layers=1, heads=2)  # tied head: only norms, biases, embeddings
    composed = recipes.no_weight_decay(model, recipes.muon(model))
    assert composed.labels == ("muon/decay", "adamw/no_decay")  # no muon/no_decay, no adamw/decay
    muon_paths = set(recipes.muon(model).assign(model).paths_of("muon"))
    labels = composed.assign(model).labels
    assert {p for p, label in labels.items() if label == "muon/decay"} == muon_paths


def test_an_mlx_multi_optimizer_with_callable_filters_composes():
    # A callable and a rule reading the model's modules: each side is evaluated on the
    # model's table (a combined rule used to call the module rule without the model).
    model = gpt()
    given = optim.MultiOptimizer([adamw(), adamw(1e-2)], [lambda path, array: array.ndim == 2])
    composed = recipes.no_weight_decay(model, given)
    assert composed.labels == ("adamw/no_decay", "adamw/decay", "adamw_2/no_decay")
    labels = composed.assign(model).labels
    assert labels["embed.weight"] == "adamw/no_decay" and labels["head.weight"] == "adamw/decay"
    assert labels["norm.weight"] == "adamw_2/no_decay"
