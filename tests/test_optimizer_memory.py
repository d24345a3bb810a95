"""What a step leaves alive: none of its gradients and none of the old parameters.

A reference cycle (a self-calling nested function, an object kept for display)
would keep a whole copy of the model alive until Python's cyclic collector
happens to run, and MLX could not reuse those buffers for the update. These
tests switch the collector off, so only plain reference counting frees arrays.
"""

import gc
import weakref

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_flatten, tree_map

from multiopt_lab import MultiOptimizer


@pytest.fixture
def without_cycle_collector():
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def weak_leaves(tree):
    return [weakref.ref(array) for _, array in tree_flatten(tree)]


def small_model():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.LayerNorm(16), nn.Linear(16, 4))
    mx.eval(model.parameters())
    return model


@pytest.mark.parametrize("compile", [False, True])
@pytest.mark.parametrize("metrics_every", [None, 1])
@pytest.mark.parametrize("skip_nonfinite", [False, True])
def test_each_step_frees_its_gradients_and_the_old_parameters(without_cycle_collector, compile,
                                                              metrics_every, skip_nonfinite):
    model = small_model()
    optimizer = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.AdamW(1e-3)], ["ndim == 2"],
                               compile=compile, metrics_every=metrics_every,
                               skip_nonfinite=skip_nonfinite)
    for step in range(3):
        gradients = tree_map(lambda p: mx.full(p.shape, 0.5), model.trainable_parameters())
        gradient_refs, old_refs = weak_leaves(gradients), weak_leaves(model.trainable_parameters())
        optimizer.update(model, gradients)
        mx.eval(model.parameters(), optimizer.state)
        del gradients
        assert [r() for r in gradient_refs if r() is not None] == [], f"step {step}: gradients kept"
        assert [r() for r in old_refs if r() is not None] == [], f"step {step}: old parameters kept"
    assert optimizer.last_assignment.labels["layers.0.weight"] == "sgd"


def test_last_assignment_keeps_shapes_not_the_gradients_it_was_computed_from(
        without_cycle_collector):
    model = small_model()
    optimizer = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
    gradients = tree_map(mx.ones_like, model.trainable_parameters())
    refs = weak_leaves(gradients)
    optimizer.update(model, gradients)
    mx.eval(model.parameters(), optimizer.state)
    del gradients
    assert all(r() is None for r in refs)
    table = optimizer.last_assignment.table
    assert table.shapes == tuple(p.shape for _, p in tree_flatten(model.trainable_parameters()))
    # Changing the rules re-assigns from the kept shapes.
    optimizer.repartition(["ndim == 1"], model)
    assert optimizer.last_assignment.labels["layers.0.weight"] == "adam"
