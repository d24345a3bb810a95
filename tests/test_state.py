"""``MultiOptimizer.state``: reading it changes nothing; state changes are followed at a step boundary.

The state is one dict for the optimizer's lifetime (compiled steps capture
it). Our own changes (a repartition, the ``state`` setter) put themselves into
it at once; a group's state dict replaced on its own optimizer
(``opt.optimizers[0].state = ...``, which MLX's setter allows) is taken into
it at the next step boundary: ``update``, ``init`` or ``between_steps``, which
``compile_step`` and the mlx-lm callback call before a compiled step.
"""

import warnings

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_map

from multiopt_lab import MultiOptimizer, compile_step
from trees import assert_identical


def make(seed=0, **kwargs):
    mx.random.seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)], ["ndim == 2"], **kwargs)
    mx.eval(model.parameters())
    return model, opt


def data(i):
    mx.random.seed(100 + i)
    return mx.random.normal((3, 4)), mx.random.normal((3, 2))


def training_step(model, opt):
    grad_fn = nn.value_and_grad(model, lambda m, x, y: mx.mean((m(x) - y) ** 2))

    def step(x, y):
        loss, grads = grad_fn(model, x, y)
        opt.update(model, grads)
        return loss
    return step


def moments_reset(state):
    """A copy of a group's state with every moment zeroed (step and learning rate kept)."""
    return tree_map(lambda a: mx.zeros_like(a) if a.ndim else a, state)


def test_reading_the_state_changes_nothing():
    model, opt = make()
    step = training_step(model, opt)
    for i in range(2):
        step(*data(i))
    mx.eval(model.parameters(), opt.state)
    held, adam = opt.state, opt.state["states"][1]
    contents, version = dict(adam), opt.version
    opt.optimizers[1].state = moments_reset(adam)  # a new dict, set on the group's optimizer
    for _ in range(3):
        assert opt.state is held and opt.state["states"][1] is adam
    assert opt.version == version and dict(adam) == contents and "routing" not in held


def test_a_group_state_set_on_its_optimizer_is_taken_at_the_next_update():
    # MLX's MultiOptimizer with the same state set on its group is the reference.
    model, opt = make()
    theirs_model, _ = make()
    theirs = optim.MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)],
                                  [lambda path, a: a.ndim == 2])
    for m, o in ((model, opt), (theirs_model, theirs)):
        step = training_step(m, o)
        for i in range(2):
            step(*data(i))
        mx.eval(m.parameters(), o.state)
    held, adam = opt.state, opt.state["states"][1]
    opt.optimizers[1].state = moments_reset(adam)
    theirs.optimizers[1].state = moments_reset(theirs.optimizers[1].state)
    for m, o in ((model, opt), (theirs_model, theirs)):
        step = training_step(m, o)
        for i in range(2, 4):
            step(*data(i))
        mx.eval(m.parameters(), o.state)
    assert_identical(model.parameters(), theirs_model.parameters())
    assert_identical(opt.state, theirs.state)
    # Taken into the dicts the state held all along.
    assert opt.state is held and opt.state["states"][1] is adam and opt.optimizers[1].state is adam


def test_a_group_state_set_on_its_optimizer_reaches_a_compiled_step():
    # compile_step calls between_steps before every call: the state set on the
    # group's optimizer trains there as one set through opt.state does.
    trained = []
    for how in ("on the group", "through opt.state"):
        model, opt = make()
        stepper = compile_step(training_step(model, opt), model, opt)
        for i in range(2):
            mx.eval(stepper(*data(i)), model.parameters())
        fresh = moments_reset(opt.optimizers[1].state)
        if how == "on the group":
            opt.optimizers[1].state = fresh
        else:
            opt.state = {"states": [opt.state["states"][0], fresh]}
        for i in range(2, 5):
            mx.eval(stepper(*data(i)), model.parameters())
        trained.append((model, opt))
    (model, opt), (twin_model, twin) = trained
    assert [int(o.step.item()) for o in opt.optimizers] == [5, 5]
    assert_identical(model.parameters(), twin_model.parameters())
    assert_identical(opt.state["states"], twin.state["states"])


def test_init_takes_a_group_state_set_on_its_optimizer():
    model, opt = make()
    opt.init(model)
    adam = opt.state["states"][1]
    opt.optimizers[1].state = {"step": mx.array(7, mx.uint64), "learning_rate": mx.array(0.5)}
    opt.init(model)
    assert opt.state["states"][1] is adam and adam["step"].item() == 7
    assert sorted(adam) == ["layers", "learning_rate", "step"]  # initialised for the biases


class TestRequestWarning:
    """``request_repartition`` warns only while nothing of ours runs between compiled replays."""

    def compiled(self, model, opt):
        state = [model.state, opt.state]
        return mx.compile(training_step(model, opt), inputs=state, outputs=state), state

    def test_after_compiled_replays_without_between_steps(self):
        model, opt = make()
        step, state = self.compiled(model, opt)
        mx.eval(step(*data(0)), state)
        with pytest.warns(UserWarning, match="between_steps"):
            opt.request_repartition(["ndim == 1"])

    def test_not_after_an_eager_update_that_follows_them(self):
        model, opt = make()
        step, state = self.compiled(model, opt)
        mx.eval(step(*data(0)), state)
        training_step(model, opt)(*data(1))  # eager: requests land at the next one
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            opt.request_repartition(["ndim == 1"])

    def test_not_once_something_calls_between_steps(self):
        model, opt = make()
        step, state = self.compiled(model, opt)
        opt.between_steps(model)
        mx.eval(step(*data(0)), state)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            opt.request_repartition(["ndim == 1"])
