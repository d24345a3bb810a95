"""Updates and states that do not fit: accepted where MLX accepts them, else refused whole.

Issue 13, defects 3 and 4, and issue 16's checks of the ``state`` setter:
parameters that went through MLX's own ``MultiOptimizer`` (its ``tree_merge``
drops the empty dict of a parameterless module) are accepted; a gradient
with no parameter, or of another shape, is refused with the path named and
nothing changed; a state whose arrays do not fit the live one is refused.
"""

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_map

from multiopt_lab import MultiOptimizer
from trees import assert_identical, flat


class WithRope(nn.Module):
    def __init__(self):
        super().__init__()
        self.rope = nn.RoPE(4)  # no parameters: an empty dict in every tree
        self.proj = nn.Linear(4, 4)
        self.norm = nn.RMSNorm(4)

    def __call__(self, x):
        return self.norm(self.proj(self.rope(x)))


def pair():
    return [optim.SGD(0.1, momentum=0.9), optim.AdamW(1e-2)]


def twins():
    mx.random.seed(0)
    a, b = WithRope(), WithRope()
    b.update(tree_map(mx.array, a.parameters()))
    mx.eval(a.parameters(), b.parameters())
    return a, b


def grads_of(model, seed):
    mx.random.seed(seed)
    return tree_map(lambda p: mx.random.normal(p.shape) * 0.1, model.trainable_parameters())


# -- defect 3: what MLX accepts -------------------------------------------------------------------
def test_parameters_returned_by_mlx_multioptimizer_are_accepted():
    model, _ = twins()
    grads = grads_of(model, 0)
    assert grads["rope"] == {}
    theirs = optim.MultiOptimizer(pair(), [lambda p, a: a.ndim == 2])
    merged = theirs.apply_gradients(grads, model.trainable_parameters())
    assert "rope" not in merged  # MLX's tree_merge dropped the empty dict
    ours, reference = MultiOptimizer(pair(), ["ndim == 2"]), optim.MultiOptimizer(
        pair(), [lambda p, a: a.ndim == 2])
    new = ours.apply_gradients(grads, merged)
    expected = reference.apply_gradients(grads, merged)
    assert_identical(new, expected)


def test_a_gradient_with_no_parameter_names_the_path():
    model, _ = twins()
    grads = dict(grads_of(model, 0))
    grads["z"] = mx.zeros((2,))
    opt = MultiOptimizer(pair(), ["ndim == 2"])
    with pytest.raises(KeyError) as caught:
        opt.update(model, grads)
    message = str(caught.value)
    assert "'z'" in message and "no parameter" in message
    assert isinstance(caught.value, ValueError)  # also a ValueError: a mismatch, not a lookup


# -- defect 4: a refused update changes nothing ---------------------------------------------------
def test_a_gradient_of_the_wrong_shape_is_refused_before_anything_changes():
    model, twin_model = twins()
    opt, twin = MultiOptimizer(pair(), ["ndim == 2"]), MultiOptimizer(pair(), ["ndim == 2"])
    for seed in range(2):
        opt.update(model, grads_of(model, seed))
        twin.update(twin_model, grads_of(twin_model, seed))
    mx.eval(opt.state, twin.state, model.parameters(), twin_model.parameters())
    before = flat(opt.state)
    bad = grads_of(model, 2)
    bad["norm"] = {"weight": mx.zeros((3,))}  # RMSNorm(4) has a (4,) weight
    with pytest.raises(ValueError) as caught:
        opt.update(model, bad)
    message = str(caught.value)
    assert "'norm.weight'" in message and "(3,)" in message and "(4,)" in message
    after = flat(opt.state)
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    assert [int(o.step.item()) for o in opt.optimizers] == [2, 2]
    # The next good step is the one of a run that never saw the bad call.
    opt.update(model, grads_of(model, 3))
    twin.update(twin_model, grads_of(twin_model, 3))
    assert_identical(model.parameters(), twin_model.parameters())
    assert_identical(opt.state, twin.state)


def test_a_parameter_of_another_shape_than_its_gradient_is_refused():
    model, _ = twins()
    opt = MultiOptimizer(pair(), ["ndim == 2"])
    opt.update(model, grads_of(model, 0))
    params = dict(model.trainable_parameters())
    params["proj"] = {"weight": mx.zeros((4, 5)), "bias": params["proj"]["bias"]}
    with pytest.raises(ValueError, match=r"'proj.weight'.*\(4, 4\).*\(4, 5\)"):
        opt.apply_gradients(grads_of(model, 1), params)
    assert [int(o.step.item()) for o in opt.optimizers] == [1, 1]


# -- issue 16: the state setter checks against the live state -------------------------------------
def trained():
    model, _ = twins()
    opt = MultiOptimizer(pair(), ["ndim == 2"])
    opt.update(model, grads_of(model, 0))
    mx.eval(opt.state)
    return model, opt


def test_a_learning_rate_of_another_shape_is_refused():
    model, opt = trained()
    state = tree_map(lambda x: x, opt.state)
    state["states"][0]["learning_rate"] = mx.full((3, 1, 1), 0.1)
    before = flat(opt.state)
    with pytest.raises(ValueError, match=r"'sgd'.*learning_rate.*\(\).*\(3, 1, 1\)"):
        opt.state = state
    after = flat(opt.state)
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    opt.update(model, grads_of(model, 1))
    assert model.proj.weight.shape == (4, 4)


def test_a_momentum_of_another_dtype_is_refused():
    model, opt = trained()
    state = tree_map(lambda x: x, opt.state)
    momentum = state["states"][0]["proj"]["weight"]["v"]
    state["states"][0]["proj"]["weight"]["v"] = momentum.astype(mx.complex64)
    with pytest.raises(ValueError, match=r"proj\.weight\.v.*float32.*complex64"):
        opt.state = state
    opt.update(model, grads_of(model, 1))
    assert model.proj.weight.dtype == mx.float32


def test_a_state_before_the_first_step_is_checked_against_the_parameters():
    model, opt = trained()
    saved = tree_map(lambda x: x, opt.state)
    saved["states"][1]["norm"]["weight"]["m"] = mx.zeros((4,), mx.complex64)
    fresh = MultiOptimizer(pair(), ["ndim == 2"])
    fresh.state = saved  # nothing live to compare with yet: checked at the first step
    with pytest.raises(ValueError, match="norm.weight"):
        fresh.update(model, grads_of(model, 1))


def test_a_state_that_fits_is_taken_as_mlx_takes_it():
    model, opt = trained()
    reference = optim.MultiOptimizer(pair(), [lambda p, a: a.ndim == 2])
    reference.state = tree_map(lambda x: x, opt.state)
    copy = MultiOptimizer(pair(), ["ndim == 2"])
    copy.state = tree_map(lambda x: x, opt.state)
    assert_identical(copy.state["states"], opt.state["states"])
    assert_identical(copy.state["states"], reference.state["states"])
