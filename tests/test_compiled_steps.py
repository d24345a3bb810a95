# Tests the private module multiopt_lab._src.live.applier's own unit.
"""A step compiled once, MLX's way, follows every change of the optimizer (issue 13, defect 1).

``mx.compile(step, inputs=state, outputs=state)`` with ``state = [model.state,
optimizer.state]`` captures the state containers once (mlx-lm's ``train()``
does exactly that). A repartition, a state set from a checkpoint, or a change
of ``metrics_every`` must reach the next call of that very function: the
containers change in place, the counters keep advancing, and the result is
the one of a step compiled afresh.
"""

import warnings
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_unflatten

from multiopt_lab import MultiOptimizer, compile_step, load_state, save_state
from trees import assert_identical, flat


def make(seed=0, **kwargs):
    mx.random.seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
    opt = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)], ["ndim == 2"], **kwargs)
    mx.eval(model.parameters())
    return model, opt


def data(i):
    mx.random.seed(100 + i)
    return mx.random.normal((3, 4)), mx.random.normal((3, 2))


def loss_fn(model, x, y):
    return mx.mean((model(x) - y) ** 2)


def compiled_step(model, opt):
    """MLX's documented pattern, exactly: the state list is captured once, here."""
    state = [model.state, opt.state]
    grad_fn = nn.value_and_grad(model, loss_fn)

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x, y):
        loss, grads = grad_fn(model, x, y)
        opt.update(model, grads)
        return loss

    return step, state


def run(model, opt, step, state, steps, first=0):
    for i in range(first, first + steps):
        mx.eval(step(*data(i)), state)


def steps_of(opt):
    return [int(o.state["step"].item()) for o in opt.optimizers]


def test_a_repartition_reaches_the_step_compiled_before_it():
    model, opt = make()
    step, state = compiled_step(model, opt)
    run(model, opt, step, state, 3)
    moves = opt.repartition(["ndim == 1"], model)  # biases to SGD, matrices to Adam
    assert ("layers.0.weight", "sgd", "adam") in [tuple(m) for m in moves]
    run(model, opt, step, state, 3, first=3)

    # The same, with the compiled step made again after the repartition.
    twin_model, twin = make()
    twin_step, twin_state = compiled_step(twin_model, twin)
    run(twin_model, twin, twin_step, twin_state, 3)
    twin.repartition(["ndim == 1"], twin_model)
    twin_step, twin_state = compiled_step(twin_model, twin)
    run(twin_model, twin, twin_step, twin_state, 3, first=3)

    assert steps_of(opt) == [6, 6]
    assert_identical(model.parameters(), twin_model.parameters())
    assert_identical({"states": opt.state["states"]}, {"states": twin.state["states"]})
    # The new routing trained: Adam holds moments for the matrices, SGD none.
    adam_state = opt.state["states"][1]["layers"][0]["weight"]
    assert mx.any(adam_state["m"] != 0).item()
    assert "weight" not in opt.state["states"][0]["layers"][0]


def test_what_reads_the_state_sees_the_live_values_after_a_repartition(tmp_path):
    model, opt = make(metrics_every=1)
    step, state = compiled_step(model, opt)
    run(model, opt, step, state, 2)
    opt.repartition(["ndim == 1"], model)
    run(model, opt, step, state, 4, first=2)
    assert steps_of(opt) == [6, 6]
    assert opt.metrics_step == 6
    save_state(tmp_path / "opt.safetensors", opt)
    loaded = make()[1]
    loaded.repartition(["ndim == 1"], model)
    load_state(tmp_path / "opt.safetensors", loaded, parameters=model)
    assert steps_of(loaded) == [6, 6]


def test_a_state_set_between_calls_is_the_one_the_compiled_step_trains(tmp_path):
    model, opt = make()
    step, state = compiled_step(model, opt)
    run(model, opt, step, state, 2)
    save_state(tmp_path / "opt.safetensors", opt)
    snapshot = {k: mx.array(v) for k, v in flat(model.parameters()).items()}
    run(model, opt, step, state, 3, first=2)
    # Back to step 2, then the same three steps again: the same result.
    model.update(tree_unflatten(list(snapshot.items())))
    load_state(tmp_path / "opt.safetensors", opt, parameters=model)
    assert steps_of(opt) == [2, 2]
    twin_model, twin = make()
    twin_step, twin_state = compiled_step(twin_model, twin)
    run(twin_model, twin, twin_step, twin_state, 5)
    run(model, opt, step, state, 3, first=2)
    assert steps_of(opt) == [5, 5]
    assert_identical(model.parameters(), twin_model.parameters())


def test_metrics_turned_on_after_compiling_are_carried_out():
    model, opt = make()
    step, state = compiled_step(model, opt)
    run(model, opt, step, state, 2)
    opt.metrics_every = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "metrics lost" warning
        run(model, opt, step, state, 2, first=2)
        assert opt.metrics_step == 4
        assert opt.metrics["sgd"]["update_norm"] > 0


def test_a_request_made_while_a_compiled_step_replays_is_not_silently_dropped():
    model, opt = make()
    step, state = compiled_step(model, opt)
    run(model, opt, step, state, 2)  # traced: from now on replays run no Python of ours
    with pytest.warns(UserWarning, match="between_steps"):
        pending = opt.request_repartition(["ndim == 1"])
    run(model, opt, step, state, 2, first=2)
    assert not pending.done and opt.has_pending_repartition  # still waiting, not lost
    opt.between_steps(model)  # the point where Python runs between two compiled calls
    assert pending.done and pending.error is None
    run(model, opt, step, state, 2, first=4)
    assert steps_of(opt) == [6, 6]
    assert "weight" in opt.state["states"][1]["layers"][0]


def test_compile_step_applies_requests_and_keeps_one_compiled_function():
    model, opt = make(metrics_every=2)
    grad_fn = nn.value_and_grad(model, loss_fn)

    def step(x, y):
        loss, grads = grad_fn(model, x, y)
        opt.update(model, grads)
        return loss

    stepper = compile_step(step, model, opt)
    recorded = []
    for i in range(8):
        if i == 3:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # compile_step applies it: nothing to warn about
                pending = opt.request_repartition(["ndim == 1"])
        mx.eval(stepper(*data(i)), model.state, opt.state)
        recorded.append(opt.metrics_step)
    assert pending.done and pending.error is None
    assert recorded == [1, 1, 3, None, 5, 5, 7, 7]  # a repartition forgets the old groups' metrics
    assert steps_of(opt) == [8, 8]
    # Two variants (with and without metrics) per routing, and one routing change.
    assert stepper.traces == 4


def test_the_editors_applier_waits_while_a_compiled_step_replays():
    # A replay runs no update in Python (update_count stands still) but steps all the
    # same: applying the request from the editor's side then would race the step.
    import asyncio

    from multiopt_lab._src.live.applier import Applier

    model, opt = make()
    step, state = compiled_step(model, opt)
    run(model, opt, step, state, 2)
    opt.between_steps(model)  # a loop that calls it (as LabCallback does) will serve requests
    done = []

    async def scenario():
        applier = Applier(opt, model, on_done=done.append, poll_seconds=0.01, idle_seconds=0.2)
        applier.apply(["ndim == 1"], opt.labels)
        for i in range(40):  # 0.4 s of steps, never idle for 0.2 s
            run(model, opt, step, state, 1, first=2 + i)
            await asyncio.sleep(0.01)
        assert not applier.pending.done, "applied from the editor's side while steps replayed"
        opt.between_steps(model)  # the loop's step boundary
        await asyncio.sleep(0.05)
        return applier.pending

    pending = asyncio.run(scenario())
    assert pending.done and pending.error is None and done == [pending]
    assert opt.assign(model).labels["layers.0.bias"] == "sgd"
