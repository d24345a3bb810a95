"""Checkpoints and frozen parameters: saving and loading agree with each other and with MLX.

MLX's optimizers keep the state of a parameter that is frozen after it trained
and use it again once it is unfrozen. A checkpoint taken meanwhile holds that
state; it must load (strict) into the same model and rules, and training must
then go on exactly as MLX's MultiOptimizer does without any checkpoint.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_flatten

import multiopt_lab as mol
from trees import assert_identical


def net():
    mx.random.seed(3)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    mx.eval(model.parameters())
    return model


def groups():
    return [optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)]


def ours():
    return mol.MultiOptimizer(groups(), ["ndim == 2"])


def theirs():
    return optim.MultiOptimizer(groups(), [lambda path, array: array.ndim == 2])


def loss(model, x):
    return (model(x) ** 2).sum()


def step(model, optimizer, seed):
    x = mx.random.normal((3, 4), key=mx.random.key(seed))
    grads = nn.value_and_grad(model, loss)(model, x)[1]
    optimizer.update(model, grads)
    mx.eval(model.parameters(), optimizer.state)


def run(model, optimizer, steps, start=0):
    for i in range(start, start + steps):
        step(model, optimizer, i)


def freeze_first(model):
    model.layers[0].freeze()


def test_a_checkpoint_taken_after_freezing_loads_and_trains_on_like_mlx(tmp_path):
    reference_model, reference = net(), theirs()
    run(reference_model, reference, 2)
    freeze_first(reference_model)
    run(reference_model, reference, 2, start=2)
    reference_model.unfreeze()
    run(reference_model, reference, 2, start=4)

    model, optimizer = net(), ours()
    run(model, optimizer, 2)
    freeze_first(model)
    run(model, optimizer, 2, start=2)
    file = tmp_path / "frozen.safetensors"
    mol.save_state(file, optimizer)
    # The file holds the state of the frozen layer, as MLX's own state does.
    assert "states.0.layers.0.weight.v" in dict(tree_flatten(optimizer.state))

    resumed = ours()
    report = mol.load_state(file, resumed, parameters=model)  # strict; was refused
    assert "layers.0.weight" in report.loaded and not report.unused
    model.unfreeze()
    run(model, resumed, 2, start=4)
    assert_identical(model.parameters(), reference_model.parameters())
    assert_identical(resumed.state["states"], reference.state["states"])


def test_mlx_own_file_taken_after_freezing_loads_strict(tmp_path):
    model, reference = net(), theirs()
    run(model, reference, 2)
    freeze_first(model)
    run(model, reference, 1, start=2)
    file = tmp_path / "mlx.safetensors"
    mx.save_safetensors(str(file), dict(tree_flatten(reference.state)))
    resumed = ours()
    mol.load_state(file, resumed, parameters=model)
    model.unfreeze()
    twin = net()
    twin.update(model.parameters())
    run(model, resumed, 1, start=3)
    run(twin, reference, 1, start=3)
    assert_identical(model.parameters(), twin.parameters())
    assert_identical(resumed.state["states"], reference.state["states"])


def test_a_checkpoint_taken_while_frozen_loads_after_unfreezing(tmp_path):
    model, optimizer = net(), ours()
    run(model, optimizer, 2)
    freeze_first(model)
    run(model, optimizer, 1, start=2)
    mol.save_state(tmp_path / "s.safetensors", optimizer)
    model.unfreeze()
    report = mol.load_state(tmp_path / "s.safetensors", ours(), parameters=model)
    assert set(report.loaded) == {p for p, _ in tree_flatten(model.trainable_parameters())}


def test_the_same_optimizer_takes_its_own_checkpoint_back_without_the_model(tmp_path):
    model, optimizer = net(), ours()
    run(model, optimizer, 2)
    freeze_first(model)
    run(model, optimizer, 1, start=2)
    mol.save_state(tmp_path / "s.safetensors", optimizer)
    report = mol.load_state(tmp_path / "s.safetensors", optimizer)  # checked against its plan
    assert "layers.0.weight" in report.loaded


def test_a_frozen_parameter_with_the_wrong_state_is_still_refused(tmp_path):
    model, optimizer = net(), ours()
    run(model, optimizer, 2)
    freeze_first(model)
    other = nn.Sequential(nn.Linear(4, 16), nn.LayerNorm(8), nn.Linear(8, 2))
    stale = ours()
    stale.init(other.trainable_parameters())
    mol.save_state(tmp_path / "s.safetensors", stale)
    with pytest.raises(ValueError, match="layers.0.weight"):
        mol.load_state(tmp_path / "s.safetensors", ours(), parameters=model)
    report = mol.load_state(tmp_path / "s.safetensors", ours(), strict=False, parameters=model)
    assert "layers.0.weight" in report.unused


def test_frozen_from_the_start_then_unfrozen_is_missing_state_for_a_strict_load(tmp_path):
    model, optimizer = net(), ours()
    freeze_first(model)
    run(model, optimizer, 2)
    mol.save_state(tmp_path / "s.safetensors", optimizer)
    model.unfreeze()
    with pytest.raises(ValueError, match="no state in the file for 'layers.0.weight'"):
        mol.load_state(tmp_path / "s.safetensors", ours(), parameters=model)
    # As MLX does, strict=False starts them fresh.
    report = mol.load_state(tmp_path / "s.safetensors", ours(), strict=False, parameters=model)
    assert set(report.initialised) == {"layers.0.weight", "layers.0.bias"}


def test_load_checkpoint_of_one_optimizer_after_freezing(tmp_path):
    model, optimizer = net(), optim.Adam(0.01)
    run(model, optimizer, 2)
    freeze_first(model)
    run(model, optimizer, 1, start=2)
    folder = mol.save_checkpoint(tmp_path / "c", model, optimizer, step=3)
    fresh = net()
    freeze_first(fresh)
    again = optim.Adam(0.01)
    assert mol.load_checkpoint(folder, fresh, again) == 3
    assert "weight" in again.state["layers"][0]
