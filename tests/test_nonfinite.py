# Tests the private modules' own units: multiopt_lab._src.optimizer.nonfinite,
#   multiopt_lab._src.widgets.monitor.
"""NaN and inf: flagged per group in metrics and in the monitor; ``skip_nonfinite`` skips the step.

The skip tests need the hook in ``optimizer/multi_optimizer.py`` (``MultiOptimizer(...,
skip_nonfinite=True)``); until it is applied they skip with that reason. The
guard itself (:mod:`multiopt_lab._src.optimizer.nonfinite`) is tested directly too.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_flatten, tree_map_with_path

from multiopt_lab import History, MultiOptimizer, load_state, save_state
from multiopt_lab._src.optimizer.nonfinite import NonfiniteGuard, all_finite, restore_where

NAN, INF = float("nan"), float("inf")


def parameters():
    return {"w": mx.ones((3, 4)), "blocks": [{"b": mx.ones((4,)), "g": mx.full((4,), 2.0)}, {},
                                            {"b": mx.zeros((5,))}]}


def gradients(bad_path=None, value=NAN, scale=1.0):
    """Gradients for :func:`parameters`; the last element at ``bad_path`` set to ``value``."""
    def one(path, p):
        g = mx.full(p.shape, 0.25 * scale)
        if path == bad_path:
            g = mx.concatenate([g.reshape(-1)[:-1], mx.array([value])]).reshape(p.shape)
        return g

    return tree_map_with_path(one, parameters())


def make(**options):
    return MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.AdamW(0.01)], ["ndim == 2"],
                          **options)


def flat(tree):
    return [(k, v.tolist()) for k, v in tree_flatten(tree)]


def bits(tree):
    """Exact comparison, NaN included (tolist gives nan != nan)."""
    return [(k, bytes(memoryview(mx.view(v.reshape(-1), mx.uint8)))) for k, v in tree_flatten(tree)]


# -- the guard on its own ---------------------------------------------------------------------------
def test_all_finite_reads_floats_only():
    assert all_finite([mx.array([1.0]), mx.array([3], mx.int32)]).item() is True
    assert all_finite([mx.array([1.0, NAN])]).item() is False
    assert all_finite([mx.array([-INF], mx.float16)]).item() is False
    assert all_finite([]).item() is True


def test_restore_where_keeps_containers_and_new_entries():
    inner = {"m": mx.array([5.0])}
    state = {"step": mx.array(2), "w": inner, "fresh": mx.array([9.0])}
    restore_where(mx.array(False), state, {"step": mx.array(1), "w": {"m": mx.array([1.0])}})
    assert state["w"] is inner and inner["m"].item() == 1.0 and state["step"].item() == 1
    assert state["fresh"].item() == 9.0  # created by this update: nothing to go back to


def test_guard_load_refuses_a_wrong_shape_and_changes_nothing():
    guard = NonfiniteGuard(2)
    before = dict(guard.arrays)
    with pytest.raises(ValueError, match="2 flags"):
        guard.load({"skipped": mx.array(3), "finite": mx.ones((3,), mx.bool_)})
    assert guard.arrays == before


# -- flags in metrics and the monitor (no hook needed) ----------------------------------------------
@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_metrics_flag_the_group_with_a_bad_gradient(value):
    opt = make(metrics_every=1)
    opt.apply_gradients(gradients("blocks.0.b", value), parameters())
    assert set(opt.nonfinite_groups) == {"adamw"}
    assert "gradient" in opt.nonfinite_groups["adamw"]
    assert math.isfinite(opt.metrics["sgd"]["grad_norm"])


def test_metrics_flag_an_update_that_overflows_from_a_finite_gradient():
    opt = MultiOptimizer([optim.SGD(3e38), optim.SGD(0.1)], ["ndim == 2"], metrics_every=1)
    opt.apply_gradients(gradients(scale=4.0), parameters())
    assert opt.nonfinite_groups == {"sgd": ("update",)}


def test_monitor_table_marks_the_nonfinite_group():
    from multiopt_lab._src.widgets.monitor import last_values_html

    history = History()
    history.record(1, loss=1.0, metrics={"sgd": {"grad_norm": 1.0, "update_norm": 0.1},
                                         "adamw": {"grad_norm": NAN, "update_norm": NAN}})
    table = last_values_html(history)
    assert '<tr data-group="adamw" class="mol-nonfinite">' in table
    assert "non-finite gradient and update" in table
    assert '<tr data-group="sgd">' in table
    history.record(2, loss=0.9, metrics={"sgd": {"grad_norm": 1.0, "update_norm": 0.1},
                                         "adamw": {"grad_norm": 1.0, "update_norm": 0.1}})
    assert "mol-nonfinite" not in last_values_html(history)  # flags follow the last step


# -- skip_nonfinite ----------------------------------------------------------------------------------
def test_default_lets_nan_through_as_mlx_does():
    opt = make()
    new = opt.apply_gradients(gradients("blocks.0.b", NAN), parameters())
    assert math.isnan(new["blocks"][0]["b"][-1].item())
    assert opt.skip_nonfinite is False and opt.skipped_steps == 0 and opt.skipped_groups == ()


@pytest.mark.parametrize("bad_path,group", [("blocks.0.b", "adamw"), ("w", "sgd"), ("blocks.2.b", "adamw")])
@pytest.mark.parametrize("value", [NAN, INF])
@pytest.mark.parametrize("compile", [False, True])
def test_a_bad_step_leaves_parameters_and_every_state_as_before(bad_path, group, value, compile):
    opt = make(skip_nonfinite=True, compile=compile)
    params = opt.apply_gradients(gradients(), parameters())
    mx.eval(params, opt.state)
    before_params, before_state = bits(params), bits(opt.state["states"])
    after = opt.apply_gradients(gradients(bad_path, value), params)
    mx.eval(after, opt.state)
    assert bits(after) == before_params
    assert bits(opt.state["states"]) == before_state
    assert opt.skipped_steps == 1 and opt.skipped_groups == (group,)


@pytest.mark.parametrize("compile", [False, True])
def test_a_finite_gradient_that_overflows_the_new_state_is_skipped(compile):
    # AdamW: v = 0.001 * g**2 = inf for g = 1e38, while the update m / (sqrt(v) + eps)
    # stays finite (0): only the new state shows that the step went wrong.
    opt = make(skip_nonfinite=True, compile=compile)
    params = opt.apply_gradients(gradients(), parameters())
    mx.eval(params, opt.state)
    before_params, before_state = bits(params), bits(opt.state["states"])
    after = opt.apply_gradients(gradients("blocks.0.b", 1e38), params)
    mx.eval(after, opt.state)
    assert all(math.isfinite(x) for _, v in tree_flatten(opt.state["states"])
               for x in v.reshape(-1).tolist())
    assert bits(after) == before_params and bits(opt.state["states"]) == before_state
    assert opt.skipped_steps == 1 and opt.skipped_groups == ("adamw",)


def test_the_guard_checks_the_new_state():
    adamw = optim.AdamW(0.01)
    guard = NonfiniteGuard(1)
    param, grad = mx.array([1.0]), mx.array([1e38])
    adamw.init({"0": param})
    old = guard.before([adamw])
    new = [adamw.apply_single(grad, param, adamw.state["0"])]
    assert math.isfinite(new[0].item())  # the update alone looks fine
    kept = guard.after([adamw], old, [grad], [param], new, [[0]])
    assert kept[0].item() == 1.0 and guard.skipped_steps == 1
    assert math.isfinite(adamw.state["0"]["v"].item())


@pytest.mark.parametrize("compile", [False, True])
def test_training_after_a_skipped_step_equals_training_without_it(compile):
    skipping, clean = make(skip_nonfinite=True, compile=compile), make(compile=compile)
    p_skip, p_clean = parameters(), parameters()
    for step in range(4):
        p_clean = clean.apply_gradients(gradients(scale=step + 1), p_clean)
        if step == 1:
            p_skip = skipping.apply_gradients(gradients("w", NAN), p_skip)
        p_skip = skipping.apply_gradients(gradients(scale=step + 1), p_skip)
    mx.eval(p_skip, p_clean, skipping.state, clean.state)
    assert bits(p_skip) == bits(p_clean)
    assert bits(skipping.state["states"]) == bits(clean.state["states"])
    assert skipping.skipped_steps == 1 and skipping.skipped_groups == ()


def test_metrics_still_show_the_bad_step_that_was_skipped():
    opt = make(skip_nonfinite=True, metrics_every=1)
    opt.apply_gradients(gradients("blocks.0.b", INF), parameters())
    assert opt.nonfinite_groups == {"adamw": ("gradient", "update")}
    assert opt.skipped_groups == ("adamw",)


def _mlp_and_loss():
    mx.random.seed(3)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))

    def loss_fn(model, x, y):
        return mx.mean(mx.square(model(x) - y))

    return model, loss_fn


def test_skips_inside_mx_compile_without_a_sync():
    model, loss_fn = _mlp_and_loss()
    opt = MultiOptimizer([optim.Muon(0.02), optim.AdamW(0.01)], ["ndim == 2"],
                         skip_nonfinite=True, metrics_every=1)
    grad_fn = nn.value_and_grad(model, loss_fn)
    opt.init(model.trainable_parameters())
    state = [model.state, opt.state]

    def step(x, y):
        loss, grads = grad_fn(model, x, y)
        opt.update(model, grads)
        return loss

    compiled = mx.compile(step, inputs=state, outputs=state)
    x, y = mx.ones((2, 4)), mx.ones((2, 1))
    compiled(x, y)
    mx.eval(state)
    kept = bits(model.parameters()), bits(opt.state["states"])
    bad = mx.array([[1.0, NAN, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    loss = compiled(bad, y)  # traced once: the skip is mx.where in the graph, not Python
    mx.eval(loss, state)
    assert math.isnan(loss.item())
    assert (bits(model.parameters()), bits(opt.state["states"])) == kept
    assert opt.skipped_steps == 1 and set(opt.skipped_groups) == {"muon", "adamw"}
    assert set(opt.nonfinite_groups) == {"muon", "adamw"}
    compiled(x, y)
    mx.eval(state)
    assert opt.skipped_steps == 1 and opt.skipped_groups == ()
    assert bits(model.parameters()) != kept[0]


def test_the_skip_count_is_state_but_not_checkpointed(tmp_path):
    opt = make(skip_nonfinite=True)
    params = opt.apply_gradients(gradients("w", NAN), parameters())
    assert set(opt.state) == {"states", "nonfinite"}
    save_state(tmp_path / "opt.safetensors", opt)
    assert not any(k.startswith("nonfinite") for k in mx.load(str(tmp_path / "opt.safetensors")))
    other = make(skip_nonfinite=True)
    load_state(tmp_path / "opt.safetensors", other, parameters=params)
    assert other.skipped_steps == 0
    other.state = opt.state  # the in-memory state carries the count
    assert other.skipped_steps == 1
