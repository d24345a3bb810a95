"""MultiOptimizer API: groups, labels, learning rates, routing cache, bad input."""

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_flatten, tree_map

from multiopt_lab import MultiOptimizer, Rule, RuleError


def small_model():
    mx.random.seed(1)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def ones_like_grads(model):
    return tree_map(lambda p: mx.full(p.shape, 0.1, p.dtype), model.trainable_parameters())


def states_identical(a, b):
    fa, fb = dict(tree_flatten(a)), dict(tree_flatten(b))
    return fa.keys() == fb.keys() and all(mx.array_equal(fa[k], fb[k]).item() for k in fa)


class TestLabels:
    def test_default_labels_come_from_the_classes(self):
        assert MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"]).labels == (
            "muon", "adamw")

    def test_repeated_classes_get_numbered(self):
        opt = MultiOptimizer([optim.AdamW(1e-3), optim.AdamW(1e-2), optim.AdamW(1e-1)],
                             ["ndim == 2", "ndim == 1"])
        assert opt.labels == ("adamw", "adamw_2", "adamw_3")

    def test_labels_of_the_wrong_count(self):
        with pytest.raises(ValueError, match="expected 2 labels.*found 1"):
            MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"], labels=["a"])

    def test_repeated_labels(self):
        with pytest.raises(ValueError, match="distinct.*'a'"):
            MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"], labels=["a", "a"])

    def test_total_is_reserved(self):
        with pytest.raises(ValueError, match="reserved"):
            MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"],
                           labels=["total", "rest"])

    def test_label_must_be_a_string(self):
        # One check for every place that takes labels (assign, rule files, here).
        with pytest.raises(ValueError, match="non-empty strings"):
            MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"], labels=["a", 3])


    def test_one_check_for_every_place_that_takes_labels(self):
        from multiopt_lab import assign

        with pytest.raises(ValueError, match="reserved") as ours:
            MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"], labels=["total", "b"])
        with pytest.raises(ValueError, match="reserved") as assigned:
            assign(small_model(), ["ndim == 2"], ["total", "b"])
        assert str(ours.value) == str(assigned.value)


class TestReadOnlyGroups:
    @pytest.mark.parametrize("name, value", [("filters", ["ndim == 1"]), ("labels", ["a", "b"]),
                                             ("optimizers", [optim.SGD(0.1), optim.SGD(0.2)])])
    def test_groups_change_only_through_repartition(self, name, value):
        model = small_model()
        opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
        opt.update(model, ones_like_grads(model))
        before = (opt.filters, opt.labels, opt.optimizers, opt.last_assignment.labels)
        with pytest.raises(AttributeError, match=f"{name} is read-only.*repartition"):
            setattr(opt, name, value)
        assert (opt.filters, opt.labels, opt.optimizers, opt.last_assignment.labels) == before
        with pytest.raises(TypeError):
            opt.optimizers[0] = optim.SGD(0.5)  # a tuple: no drift through the back door


class TestFilters:
    def test_wrong_number_of_filters_says_how_many(self):
        with pytest.raises(ValueError, match="Given 0 filters but 1 needed"):
            MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)])

    def test_strings_rules_and_callables_mix(self):
        opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1), optim.Lion(0.1)],
                             ["ndim == 2", lambda path, a: "bias" in path])
        assert all(isinstance(f, Rule) for f in opt.filters) and len(opt.filters) == 2
        labels = opt.assign(small_model()).labels
        assert labels["layers.0.weight"] == "sgd" and labels["layers.0.bias"] == "adam"

    def test_a_bad_rule_string_is_refused_at_construction(self):
        with pytest.raises(RuleError):
            MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim =="])

    def test_the_same_optimizer_twice_is_refused(self):
        sgd = optim.SGD(0.1)
        with pytest.raises(ValueError, match="distinct optimizer"):
            MultiOptimizer([sgd, sgd], ["ndim == 2"])


class TestLearningRates:
    def test_learning_rate_keeps_mlx_behaviour(self):
        opt = MultiOptimizer([optim.SGD(0.5), optim.Adam(0.25)], ["ndim == 2"])
        assert opt.learning_rate.item() == 0.5  # group 0's only, as in MLX
        opt.learning_rate = 0.125
        assert opt.learning_rates == {"sgd": 0.125, "adam": 0.125}

    def test_learning_rates_follow_schedules(self):
        model = small_model()
        opt = MultiOptimizer([optim.SGD(optim.linear_schedule(1.0, 0.0, 4)), optim.Adam(0.25)],
                             ["ndim == 2"])
        grads = ones_like_grads(model)
        rates = []
        for _ in range(3):
            opt.update(model, grads)
            rates.append(opt.learning_rates["sgd"])
        assert rates == [1.0, 0.75, 0.5]
        assert opt.learning_rates["adam"] == 0.25

    def test_setting_learning_rates_by_label(self):
        opt = MultiOptimizer([optim.SGD(0.5), optim.Adam(0.25)], ["ndim == 2"])
        opt.learning_rates = {"adam": 0.5}
        assert opt.learning_rates == {"sgd": 0.5, "adam": 0.5}
        with pytest.raises(KeyError, match="'nope'"):
            opt.learning_rates = {"nope": 1.0}

    def test_setting_a_scheduled_rate_is_refused(self):
        opt = MultiOptimizer([optim.SGD(optim.step_decay(1.0, 0.5, 2)), optim.Adam(0.25)],
                             ["ndim == 2"])
        with pytest.raises(ValueError, match="schedule"):
            opt.learning_rates = {"sgd": 0.1}

    def test_step_counts_updates(self):
        model = small_model()
        opt = MultiOptimizer([optim.SGD(0.5), optim.Adam(0.25)], ["ndim == 2"])
        opt.update(model, ones_like_grads(model))
        assert opt.step.item() == 1
        with pytest.raises(KeyError):  # what MLX's does, for the record
            optim.MultiOptimizer([optim.SGD(0.5), optim.Adam(0.25)], [lambda p, a: True]).step  # noqa: B018 - the access is what raises


class CountingFilter:
    def __init__(self):
        self.calls = 0

    def __call__(self, path, array):
        self.calls += 1
        return array.ndim == 2


class TestRoutingCache:
    def test_filters_run_once_per_structure(self):
        model, counting = small_model(), CountingFilter()
        opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], [counting])
        grads = ones_like_grads(model)
        for _ in range(5):
            opt.update(model, grads)
        assert counting.calls == 4  # four parameters, once

    def test_mlx_runs_them_every_step(self):
        model, counting = small_model(), CountingFilter()
        opt = optim.MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], [counting])
        grads = ones_like_grads(model)
        for _ in range(5):
            opt.update(model, grads)
        assert counting.calls == 20

    def test_cache_is_dropped_on_structure_change_init_and_state(self):
        model, counting = small_model(), CountingFilter()
        opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], [counting])
        grads = ones_like_grads(model)
        opt.update(model, grads)
        model.layers[0].freeze()  # the gradients lose two arrays
        opt.update(model, ones_like_grads(model))
        assert counting.calls == 4 + 2
        opt.state = opt.state
        opt.update(model, ones_like_grads(model))
        assert counting.calls == 4 + 2 + 2
        opt.init(model.trainable_parameters())
        assert counting.calls == 4 + 2 + 2 + 2

    def test_cache_false_runs_filters_every_step_and_moves_state(self):
        model = small_model()
        flag = {"matrices": True}
        opt = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.1)],
                             [lambda path, a: (a.ndim == 2) == flag["matrices"]], cache=False)
        grads = ones_like_grads(model)
        opt.update(model, grads)
        assert "weight" in opt.state["states"][0]["layers"][0]
        flag["matrices"] = False
        opt.update(model, grads)
        sgd_state, adam_state = opt.state["states"]
        assert "bias" in sgd_state["layers"][0] and "weight" not in sgd_state["layers"][0]
        # the weights started fresh in Adam: one step of moments
        assert mx.allclose(adam_state["layers"][0]["weight"]["m"], mx.full((8, 4), 0.01)).item()

    def test_result_has_the_structure_of_the_gradients(self):
        model = small_model()
        opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
        grads = ones_like_grads(model)
        new = opt.apply_gradients(grads, model)
        assert [k for k, _ in tree_flatten(new)] == [k for k, _ in tree_flatten(grads)]


class TestState:
    def test_layout_is_mlx_s(self):
        model = small_model()
        opt = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.1)], ["ndim == 2"])
        opt.update(model, ones_like_grads(model))
        assert list(opt.state) == ["states"] and len(opt.state["states"]) == 2
        reference = optim.MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.1)],
                                         [lambda p, a: a.ndim == 2])
        reference.state = opt.state  # MLX takes ours as is
        assert states_identical(reference.state, opt.state)

    def test_wrong_state_is_refused_and_nothing_changes(self):
        model = small_model()
        opt = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.1)], ["ndim == 2"])
        opt.update(model, ones_like_grads(model))
        before = dict(tree_flatten(opt.state))
        with pytest.raises(ValueError, match="expected .* 2 sub-states.*found 1"):
            opt.state = {"states": [opt.state["states"][0]]}
        with pytest.raises(ValueError, match="found dict with keys"):
            opt.state = {"weights": []}
        after = dict(tree_flatten(opt.state))
        assert before.keys() == after.keys() and all(before[k] is after[k] for k in before)


class ClippedSGD(optim.SGD):
    """Clips its group's gradient norm: a custom apply_gradients, as users write."""

    calls = 0

    def apply_gradients(self, gradients, parameters):
        type(self).calls += 1
        gradients, _ = optim.clip_grad_norm(gradients, 0.05)
        return super().apply_gradients(gradients, parameters)


def test_optimizer_overriding_apply_gradients_runs_its_own_code():
    def pair():
        return [ClippedSGD(0.1, momentum=0.9), optim.Lion(1e-3)]

    mx.random.seed(3)
    model_a, model_b = small_model(), small_model()
    model_b.update(model_a.parameters())
    ours = MultiOptimizer(pair(), [lambda p, a: "bias" in p])
    theirs = optim.MultiOptimizer(pair(), [lambda p, a: "bias" in p])
    for _ in range(3):
        grads = ones_like_grads(model_a)
        calls = ClippedSGD.calls
        ours.update(model_a, grads)
        assert ClippedSGD.calls == calls + 1  # went through ClippedSGD.apply_gradients
        theirs.update(model_b, grads)
    assert states_identical(model_a.parameters(), model_b.parameters())
    assert states_identical(ours.state, theirs.state)


def test_bfloat16_and_float32_parameters_stay_exact():
    mx.random.seed(4)
    model_a = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    model_a.layers[1].set_dtype(mx.bfloat16)
    model_b = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    model_b.update(model_a.parameters())
    ours = MultiOptimizer([optim.AdamW(1e-2), optim.Lion(1e-3)], ["ndim == 1"])
    theirs = optim.MultiOptimizer([optim.AdamW(1e-2), optim.Lion(1e-3)], [lambda p, a: a.ndim == 1])
    for step in range(3):
        grads = tree_map(lambda p, step=step: (mx.arange(p.size).reshape(p.shape) * 0.01 - step).astype(p.dtype),
                         model_a.trainable_parameters())
        ours.update(model_a, grads)
        theirs.update(model_b, grads)
    assert model_a.layers[1].weight.dtype == mx.bfloat16
    assert states_identical(model_a.parameters(), model_b.parameters())
    assert states_identical(ours.state, theirs.state)
