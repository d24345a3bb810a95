"""Repartitioning between steps: state moves with the parameter, nothing half applied."""

import threading

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_flatten, tree_map

from multiopt_lab import MultiOptimizer, RuleError, compile_step


def model_and_grads(seed=0):
    mx.random.seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
    grads = tree_map(lambda p: mx.random.normal(p.shape) * 0.1, model.trainable_parameters())
    return model, grads


def trained(steps=2, **kwargs):
    model, grads = model_and_grads()
    opt = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)], ["ndim == 2"], **kwargs)
    for _ in range(steps):
        opt.update(model, grads)
    mx.eval(model.parameters(), opt.state)
    return model, grads, opt


def snapshot(opt):
    return {k: v for k, v in tree_flatten(opt.state)}


def test_moved_parameters_start_fresh_and_the_rest_keep_their_state():
    model, grads, opt = trained()
    before = snapshot(opt)
    moves = opt.repartition(['ndim == 2 and path != "layers.3.weight"'], model)
    assert [tuple(m) for m in moves] == [("layers.3.weight", "sgd", "adam")]
    after = snapshot(opt)
    moved_state = opt.state["states"][1]["layers"][3]["weight"]
    assert mx.array_equal(moved_state["m"], mx.zeros((2, 8))).item()
    assert not any(k.startswith("states.0.layers.3.weight") for k in after)  # dropped
    for key, value in before.items():
        if "layers.3.weight" not in key and not key.endswith(("step", "learning_rate")):
            assert after[key] is value, key  # the very same arrays: bit for bit
    assert after["states.0.step"].item() == after["states.1.step"].item() == 2


def test_training_after_a_repartition_matches_mlx_resumed_from_our_state():
    model, grads, opt = trained()
    opt.repartition(["ndim == 1"], model)
    reference_model, _ = model_and_grads()
    reference_model.update(model.parameters())
    reference = optim.MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)],
                                     [lambda p, a: a.ndim == 1])
    reference.state = tree_map(lambda x: x, opt.state)
    for _ in range(2):
        opt.update(model, grads)
        reference.update(reference_model, grads)
    for (k, a), (_, b) in zip(tree_flatten(model.parameters()),
                              tree_flatten(reference_model.parameters())):
        assert mx.array_equal(a, b).item(), k


def test_a_change_of_group_count_needs_the_optimizers():
    model, _, opt = trained()
    before = snapshot(opt)
    with pytest.raises(ValueError, match="Given 2 filters but .* 2 groups.*optimizers="):
        opt.repartition(["ndim == 2", "ndim == 1"], model)
    assert snapshot(opt).keys() == before.keys() and opt.labels == ("sgd", "adam")


def test_new_optimizers_keep_the_state_of_those_that_stay():
    model, _, opt = trained()
    sgd, adam = opt.optimizers
    kept = opt.state["states"][0]["layers"][0]["weight"]
    lion = optim.Lion(1e-3)
    moves = opt.repartition(["ndim == 2", 'path == "layers.3.bias"'], model,
                            optimizers=[sgd, lion, adam])
    assert opt.labels == ("sgd", "lion", "adam")
    assert [tuple(m) for m in moves] == [("layers.3.bias", "adam", "lion")]
    assert opt.state["states"][0]["layers"][0]["weight"] is kept


@pytest.mark.parametrize("bad", ["ndim ==", "shape[1] == 8"])
def test_rules_that_fail_leave_everything_untouched(bad):
    model, grads, opt = trained()
    before, filters, version = snapshot(opt), opt.filters, opt.version
    with pytest.raises(RuleError):
        opt.repartition([bad], model)
    after = snapshot(opt)
    assert opt.filters == filters and opt.version == version
    assert before.keys() == after.keys() and all(before[k] is after[k] for k in before)
    # ... and the next step trains exactly as one with no refused call before it.
    twin_model, twin_grads, twin = trained()
    opt.update(model, grads)
    twin.update(twin_model, twin_grads)
    for (k, a), (_, b) in zip(tree_flatten(opt.state), tree_flatten(twin.state)):
        assert mx.array_equal(a, b).item(), k


def test_labels_can_be_renamed_without_moving_anything():
    model, _, opt = trained()
    assert opt.repartition(["ndim == 2"], model, labels=["matrices", "vectors"]) == []
    assert opt.labels == ("matrices", "vectors")


def test_requested_repartition_applies_at_the_next_update():
    model, grads, opt = trained()
    pending = []
    worker = threading.Thread(target=lambda: pending.append(opt.request_repartition(["ndim == 1"])))
    worker.start()
    worker.join()
    assert not pending[0].done and opt.assign(model).labels["layers.0.bias"] == "adam"
    opt.update(model, grads)
    assert pending[0].done and pending[0].error is None
    assert opt.assign(model).labels["layers.0.bias"] == "sgd"
    assert ("layers.0.bias", "adam", "sgd") in [tuple(m) for m in pending[0].moves]


def test_requested_repartition_that_fails_changes_nothing():
    model, grads, opt = trained()
    pending = opt.request_repartition(["shape[1] == 8"])  # parses, fails on 1-D arrays
    with pytest.warns(UserWarning, match="not applied"):
        opt.update(model, grads)
    assert isinstance(pending.error, RuleError)
    assert opt.assign(model).labels["layers.0.weight"] == "sgd"


def test_a_bad_request_is_refused_at_once():
    _, _, opt = trained()
    with pytest.raises(RuleError):
        opt.request_repartition(["ndim =="])
    assert not opt.has_pending_repartition


def _loss(model, x):
    return (model(x) ** 2).mean()


def test_compile_step_retraces_after_a_repartition_and_matches_eager():
    def run(compiled):
        model, _ = model_and_grads(1)
        opt = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)], ["ndim == 2"])
        grad_fn = nn.value_and_grad(model, _loss)

        def step(x):
            loss, grads = grad_fn(model, x)
            opt.update(model, grads)
            return loss

        stepper = compile_step(step, model, opt) if compiled else step
        x = mx.ones((3, 4))
        for i in range(4):
            if i == 2:
                opt.request_repartition(["ndim == 1"])
            mx.eval(stepper(x), model.parameters(), opt.state)
        return model, opt, stepper

    eager_model, _, _ = run(False)
    compiled_model, compiled_opt, stepper = run(True)
    assert stepper.traces == 2
    assert compiled_opt.assign(compiled_model).labels["layers.0.bias"] == "sgd"
    for (k, a), (_, b) in zip(tree_flatten(eager_model.parameters()),
                              tree_flatten(compiled_model.parameters())):
        assert mx.allclose(a, b, atol=1e-6).item(), k
