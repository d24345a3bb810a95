# Tests the private module multiopt_lab._src.io.safetensors_writer's own unit.
"""save_state / load_state: MLX's layout both ways, metadata, atomic writes, clear refusals."""

import json
import os

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_map, tree_unflatten

from multiopt_lab import MultiOptimizer, load_state, save_state
from multiopt_lab._src.io.safetensors_writer import SafetensorsArrays
from trees import flat


def model_and_grads(width=8, seed=0):
    mx.random.seed(seed)
    model = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 2))
    grads = tree_map(lambda p: mx.random.normal(p.shape) * 0.1, model.trainable_parameters())
    return model, grads


def pair():
    return [optim.SGD(0.1, momentum=0.9), optim.AdamW(optim.cosine_decay(1e-2, 10))]


def ours(rules=("ndim == 2",)):
    return MultiOptimizer(pair(), list(rules))


def mlx_opt():
    return optim.MultiOptimizer(pair(), [lambda p, a: a.ndim == 2])


def identical(a, b):
    fa, fb = flat(a), flat(b)
    return fa.keys() == fb.keys() and all(mx.array_equal(fa[k], fb[k]).item() for k in fa)


def run(opt, model, grads, steps):
    for _ in range(steps):
        opt.update(model, grads)
    mx.eval(model.parameters(), opt.state)


def test_resuming_from_a_checkpoint_matches_an_uninterrupted_run(tmp_path):
    model, grads = model_and_grads()
    straight, resumed_model = ours(), model_and_grads()[0]
    run(straight, model, grads, 2)
    save_state(tmp_path / "opt.safetensors", straight)
    resumed_model.update(model.parameters())
    resumed = ours()
    report = load_state(tmp_path / "opt.safetensors", resumed, parameters=resumed_model)
    assert report.initialised == () and len(report.loaded) == 4
    run(straight, model, grads, 2)
    run(resumed, resumed_model, grads, 2)
    assert identical(model.parameters(), resumed_model.parameters())
    assert identical(straight.state, resumed.state)


def test_metadata_names_labels_rules_and_paths(tmp_path):
    model, grads = model_and_grads()
    opt = ours()
    run(opt, model, grads, 1)
    save_state(tmp_path / "opt.safetensors", opt)
    _, metadata = mx.load(str(tmp_path / "opt.safetensors"), return_metadata=True)
    assert json.loads(metadata["labels"]) == ["sgd", "adamw"]
    assert json.loads(metadata["rules"]) == ["ndim == 2"]
    assert json.loads(metadata["paths"]) == [["layers.0.weight", "layers.2.weight"],
                                             ["layers.0.bias", "layers.2.bias"]]


def test_mlx_checkpoint_loads_into_ours_and_ours_into_mlx(tmp_path):
    model, grads = model_and_grads()
    reference = mlx_opt()
    run(reference, model, grads, 2)
    mx.save_safetensors(str(tmp_path / "mlx.safetensors"), flat(reference.state))
    mine = ours()
    load_state(tmp_path / "mlx.safetensors", mine, parameters=model)
    assert identical(mine.state, reference.state)

    save_state(tmp_path / "ours.safetensors", mine)
    back = mlx_opt()
    back.state = tree_unflatten(list(mx.load(str(tmp_path / "ours.safetensors")).items()))
    model_a, model_b = model_and_grads()[0], model_and_grads()[0]
    model_a.update(model.parameters())
    model_b.update(model.parameters())
    run(back, model_a, grads, 2)
    run(mine, model_b, grads, 2)
    assert identical(model_a.parameters(), model_b.parameters())


def test_strict_load_into_other_rules_names_the_paths_and_changes_nothing(tmp_path):
    model, grads = model_and_grads()
    opt = ours()
    run(opt, model, grads, 1)
    save_state(tmp_path / "opt.safetensors", opt)
    other = ours(["name == 'bias'"])
    run(other, model, grads, 1)
    before = flat(other.state)
    with pytest.raises(ValueError, match=r"group 'sgd': no state in the file for 'layers.0.bias'"):
        load_state(tmp_path / "opt.safetensors", other)
    after = flat(other.state)
    assert before.keys() == after.keys() and all(before[k] is after[k] for k in before)


def test_non_strict_load_keeps_what_matches_and_says_what_started_fresh(tmp_path):
    model, grads = model_and_grads()
    opt = ours()
    run(opt, model, grads, 1)
    save_state(tmp_path / "opt.safetensors", opt)
    other = ours(['path == "layers.0.weight"'])  # layers.2.weight now goes to AdamW
    report = load_state(tmp_path / "opt.safetensors", other, strict=False, parameters=model)
    assert report.initialised == ("layers.2.weight",)
    assert report.unused == ("layers.2.weight",)
    assert set(report.loaded) == {"layers.0.weight", "layers.0.bias", "layers.2.bias"}
    saved = opt.state["states"][0]["layers"][0]["weight"]["v"]
    assert mx.array_equal(other.state["states"][0]["layers"][0]["weight"]["v"], saved).item()
    fresh = other.state["states"][1]["layers"][2]["weight"]["m"]
    assert mx.array_equal(fresh, mx.zeros_like(fresh)).item()
    run(other, model, grads, 1)  # and it trains on


def test_checkpoint_from_another_model_is_refused(tmp_path):
    small, grads = model_and_grads(width=8)
    opt = ours()
    run(opt, small, grads, 1)
    save_state(tmp_path / "opt.safetensors", opt)
    wide, _ = model_and_grads(width=16)
    target = ours()
    with pytest.raises(ValueError, match="different state shapes for 'layers.0.weight'"):
        load_state(tmp_path / "opt.safetensors", target, parameters=wide)


def test_other_number_of_groups_is_refused(tmp_path):
    model, grads = model_and_grads()
    opt = ours()
    run(opt, model, grads, 1)
    save_state(tmp_path / "opt.safetensors", opt)
    three = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1), optim.Lion(0.1)],
                           ["ndim == 2", "ndim == 1"])
    with pytest.raises(ValueError, match="expected 3 groups .* found 2"):
        load_state(tmp_path / "opt.safetensors", three)


def test_a_crash_mid_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    model, grads = model_and_grads()
    opt = ours()
    run(opt, model, grads, 1)
    target = tmp_path / "opt.safetensors"
    save_state(target, opt)
    old_bytes = target.read_bytes()
    run(opt, model, grads, 1)

    def crash(arrays, file, metadata=None):
        file.write(b"\x00" * 16)  # a torn write into the file being written
        raise OSError("disk full")

    monkeypatch.setattr(SafetensorsArrays, "write", crash)
    with pytest.raises(OSError, match="disk full"):
        save_state(target, opt)
    assert target.read_bytes() == old_bytes
    assert os.listdir(tmp_path) == ["opt.safetensors"]


def test_a_mismatched_checkpoint_loaded_without_parameters_fails_at_the_first_step(tmp_path):
    small, grads = model_and_grads(width=8)
    opt = ours()
    run(opt, small, grads, 1)
    save_state(tmp_path / "opt.safetensors", opt)
    wide, wide_grads = model_and_grads(width=16)
    target = ours()
    load_state(tmp_path / "opt.safetensors", target)  # nothing to compare with yet
    with pytest.raises(ValueError, match="group 'sgd' does not fit.*'layers.0.weight'"):
        target.update(wide, wide_grads)
