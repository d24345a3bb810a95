# Tests the private modules' own units: multiopt_lab._src.io.atomic,
#   multiopt_lab._src.io.checkpoint, multiopt_lab._src.io.safetensors_reader,
#   multiopt_lab._src.io.safetensors_writer, multiopt_lab._src.trees.unflatten.
"""Checkpoint faults: truncated, corrupted, wrong-model, wrong-version files; interrupted saves.

Every bad file gives a ``ValueError`` that names the file and the problem and
leaves the optimizer as it was; a save that stops at any point (an exception
at each stage, or the process killed) leaves the previous file loadable.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap

import mlx.core as mx
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_flatten

import multiopt_lab._src.io.atomic as atomic
import multiopt_lab._src.io.checkpoint as checkpoint
from multiopt_lab import MultiOptimizer, load_state, save_state
from multiopt_lab._src.io.checkpoint import FORMAT
from multiopt_lab._src.io.safetensors_writer import SafetensorsArrays


def parameters(width=3):
    return {"w": mx.ones((width, 2)), "layers": [{"b": mx.ones((2,))}, {}, {"b": mx.ones((2,))}]}


def optimizer():
    return MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)], ["ndim == 2"])


def trained(steps=2, width=3):
    params, opt = parameters(width), optimizer()
    for _ in range(steps):
        grads = {"w": mx.full((width, 2), 0.5), "layers": [{"b": mx.ones((2,))}, {}, {"b": -mx.ones((2,))}]}
        params = opt.apply_gradients(grads, params)
    mx.eval(params, opt.state)
    return opt


def snapshot(opt):
    return {k: v.tolist() for k, v in tree_flatten(opt.state)}


@pytest.fixture
def saved(tmp_path):
    file = tmp_path / "opt.safetensors"
    save_state(file, trained())
    return file


def load_fails(file, match):
    """Load into a fresh, stepped optimizer: a clear ValueError, and that optimizer untouched."""
    target = trained(steps=1)
    before = snapshot(target)
    with pytest.raises(ValueError, match=match) as info:
        load_state(file, target, parameters=parameters())
    assert str(file) in str(info.value), f"the error does not name the file: {info.value}"
    assert snapshot(target) == before
    return str(info.value)


def test_a_good_file_round_trips(saved):
    target = optimizer()
    load_state(saved, target, parameters=parameters())
    assert snapshot(target) == snapshot(trained())


@pytest.mark.parametrize("keep", [0, 3, 8, 9, 40, -60, -9, -1])
def test_a_truncated_file_is_refused_by_name(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: keep if keep >= 0 else len(data) + keep])
    load_fails(saved, "missing, truncated or corrupted")


def test_every_truncation_point_is_refused(saved):
    data = saved.read_bytes()
    for keep in range(0, len(data), 7):
        saved.write_bytes(data[:keep])
        load_fails(saved, "truncated or corrupted")


def test_any_single_flipped_bit_is_refused_or_harmless(saved):
    # safetensors has no checksum of its own: save_state writes one (metadata crc32), so a
    # flip in the arrays, their shapes or the metadata cannot load silently.
    data = saved.read_bytes()
    expected = snapshot(trained())
    outcomes = {"refused": 0, "harmless": 0}
    for position in range(len(data)):
        for bit in (0x01, 0x40):
            corrupt = bytearray(data)
            corrupt[position] ^= bit
            saved.write_bytes(bytes(corrupt))
            target = optimizer()
            try:
                load_state(saved, target, parameters=parameters())
            except ValueError as err:
                assert str(saved) in str(err)
                outcomes["refused"] += 1
            else:
                # Only a flip the format ignores (header padding) may load, and it loads the truth.
                assert snapshot(target) == expected, f"byte {position} ^ {bit:#x} loaded wrong state"
                outcomes["harmless"] += 1
    assert outcomes["refused"] > 0.9 * sum(outcomes.values()), outcomes


def test_corrupt_data_with_valid_framing_is_caught_by_the_checksum(saved):
    arrays, metadata = mx.load(str(saved), return_metadata=True)
    arrays["states.0.w.v"] = arrays["states.0.w.v"] + 1  # plausible numbers, wrong ones
    mx.save_safetensors(str(saved), arrays, metadata=metadata)
    assert "checksum" in load_fails(saved, "corrupted")


def test_broken_metadata_json_names_the_key(saved):
    arrays, metadata = mx.load(str(saved), return_metadata=True)
    metadata["paths"] = "[[\"w\"], [\"layers.0.b\""
    del metadata["crc32"]  # as if another tool rewrote the file without one
    mx.save_safetensors(str(saved), arrays, metadata=metadata)
    assert "'paths' is not valid JSON" in load_fails(saved, "metadata")


def test_another_format_version_is_refused_with_both_versions(saved):
    arrays, metadata = mx.load(str(saved), return_metadata=True)
    metadata["format"] = "multiopt_lab.optimizer_state/2"
    metadata["crc32"] = checkpoint.checksum(arrays, metadata)
    mx.save_safetensors(str(saved), arrays, metadata=metadata)
    message = load_fails(saved, "format")
    assert "optimizer_state/2" in message and FORMAT in message


def test_an_mlx_written_file_without_format_still_loads(tmp_path):
    reference = optim.MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)],
                                     [lambda p, a: a.ndim == 2])
    params = parameters()
    grads = {"w": mx.full((3, 2), 0.5), "layers": [{"b": mx.ones((2,))}, {}, {"b": -mx.ones((2,))}]}
    reference.apply_gradients(grads, params)
    file = tmp_path / "mlx.safetensors"
    mx.save_safetensors(str(file), dict(tree_flatten(reference.state)))
    target = optimizer()
    load_state(file, target, parameters=params)
    assert snapshot(target) == {k: v.tolist() for k, v in tree_flatten(reference.state)}


def test_a_checkpoint_of_another_model_names_group_and_paths(saved):
    target = trained(steps=1, width=5)
    before = snapshot(target)
    with pytest.raises(ValueError, match=r"group 'sgd': different state shapes for 'w'") as info:
        load_state(saved, target, parameters=parameters(width=5))
    assert "strict=False" in str(info.value)
    assert snapshot(target) == before


def test_a_checkpoint_with_other_rules_names_the_moved_paths(saved):
    target = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)], ["ndim == 1"])
    with pytest.raises(ValueError, match="routes elsewhere"):
        load_state(saved, target, parameters=parameters())


def test_model_weights_are_not_an_optimizer_state(tmp_path):
    file = tmp_path / "weights.safetensors"
    mx.save_safetensors(str(file), {"w": mx.ones((3, 2))})
    load_fails(file, "expected a multi-optimizer state")


@pytest.mark.parametrize("key, message", [
    ("states.0.layers.99999999999.b", "key 'states.0.layers.99999999999' indexes a list past"),
    ("states.4294967296.step", "key 'states.4294967296' indexes a list past"),
    ("states.0.layers." + "9" * 5000 + ".b", "indexes a list past"),  # int() refuses 5000 digits
    ("states.0." + "a." * 200 + "b", "is nested too deep"),
])
def test_a_crafted_key_cannot_exhaust_memory(tmp_path, key, message):
    # MLX's tree_unflatten would build 10**11 empty dicts for the first key.
    file = tmp_path / "crafted.safetensors"
    mx.save_safetensors(str(file), {"states.0.step": mx.array(1), key: mx.zeros((2,))})
    load_fails(file, message)


def test_a_list_index_of_leading_zeros_or_other_digits_is_an_index(tmp_path):
    from multiopt_lab._src.trees.unflatten import unflatten

    assert unflatten([("a.0000000001", 1), ("a.0", 2)]) == {"a": [2, 1]}
    assert unflatten([("a.\u0661", 1)]) == {"a": [{}, 1]}  # ARABIC-INDIC DIGIT ONE, as int() reads it
    assert unflatten([("a.\u00b2", 1)]) == {"a": {"\u00b2": 1}}  # SUPERSCRIPT TWO: no int(), a name


def test_a_header_that_claims_petabytes_is_refused(tmp_path):
    file = tmp_path / "huge.safetensors"
    file.write_bytes(struct.pack("<Q", 2**50) + b"{}")
    load_fails(file, "truncated or corrupted")


def test_a_missing_file_is_refused_by_name(tmp_path):
    load_fails(tmp_path / "nowhere.safetensors", "missing")


def _interrupt_at(monkeypatch, stage):
    """Make save_state fail at ``stage``, after writing part of the new file."""
    real_write = SafetensorsArrays.write

    def partial_save(arrays, file, metadata=None):
        real_write(arrays, file, metadata)
        file.flush()
        file.truncate(os.fstat(file.fileno()).st_size // 2)
        raise KeyboardInterrupt("interrupted while writing")

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if stage == "state":
        monkeypatch.setattr(MultiOptimizer, "state", property(lambda self: fail()))
    elif stage == "write":
        monkeypatch.setattr(SafetensorsArrays, "write", partial_save)
    elif stage == "fsync":
        monkeypatch.setattr(checkpoint.os, "fsync", fail)
    elif stage == "rename":
        monkeypatch.setattr(checkpoint.os, "replace", fail)
    elif stage == "tempfile":
        monkeypatch.setattr(atomic.os, "open", fail)


@pytest.mark.parametrize("stage", ["state", "tempfile", "write", "fsync", "rename"])
def test_an_interrupted_save_leaves_the_previous_file(saved, monkeypatch, stage):
    before = saved.read_bytes()
    newer = trained(steps=5)
    _interrupt_at(monkeypatch, stage)
    with pytest.raises((OSError, KeyboardInterrupt)):
        save_state(saved, newer)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert sorted(os.listdir(saved.parent)) == [saved.name], "a temporary file was left behind"
    target = optimizer()
    load_state(saved, target, parameters=parameters())
    assert snapshot(target) == snapshot(trained())


SAVER = textwrap.dedent("""
    import sys, mlx.core as mx, mlx.optimizers as optim
    from multiopt_lab import save_state
    from multiopt_lab import MultiOptimizer
    opt = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)], ["ndim == 2"])
    params = {"w": mx.ones((256, 256)), "b": mx.ones((256,))}
    step = 0
    while True:
        step += 1
        params = opt.apply_gradients({"w": mx.full((256, 256), step * 1.0), "b": mx.ones((256,))}, params)
        save_state(sys.argv[1], opt)
        if step == 3:
            print("saving", flush=True)
""")


def test_a_killed_saver_leaves_a_complete_file(tmp_path):
    file = tmp_path / "opt.safetensors"
    process = subprocess.Popen([sys.executable, "-c", SAVER, str(file)], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout.readline().strip() == "saving"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    target = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)], ["ndim == 2"])
    report = load_state(file, target, parameters={"w": mx.ones((256, 256)), "b": mx.ones((256,))})
    assert report.loaded == ("w", "b")
    step = target.optimizers[0].state["step"].item()
    # SGD momentum after k steps of gradient c*i: the file holds one whole, consistent step.
    assert target.optimizers[1].state["step"].item() == step >= 3
    assert json.loads(mx.load(str(file), return_metadata=True)[1]["labels"]) == ["sgd", "adam"]


class TestDistributedCheckpointFiles:
    """load_checkpoint reads its files as load_state does: guarded, and named in errors."""

    @staticmethod
    def folder(tmp_path, optimizer=None):
        import mlx.nn as nn

        from multiopt_lab import save_checkpoint

        mx.random.seed(0)
        model = nn.Linear(3, 2)
        optimizer = optimizer or optim.SGD(0.1, momentum=0.9)
        optimizer.init(model.trainable_parameters())
        return save_checkpoint(tmp_path / "ck", model, optimizer, step=1), model, optimizer

    @staticmethod
    def files(folder):
        info = json.loads((folder / "checkpoint.json").read_text())
        return {kind: folder / name for kind, name in info["files"].items()}

    @pytest.mark.parametrize("strict", [True, False])
    @pytest.mark.parametrize("which", ["model", "optimizer"])
    def test_a_crafted_list_index_cannot_exhaust_memory(self, tmp_path, strict, which):
        import mlx.nn as nn

        from multiopt_lab import load_checkpoint

        folder, model, _ = self.folder(tmp_path)
        file = self.files(folder)[which]
        arrays = mx.load(str(file))
        arrays["layers.100000000.weight"] = mx.zeros((2,))  # tree_unflatten: 10**8 entries
        mx.save_safetensors(str(file), arrays)
        target, target_opt = nn.Linear(3, 2), optim.SGD(0.1, momentum=0.9)
        with pytest.raises(ValueError, match="indexes a list past") as info:
            load_checkpoint(folder, target, target_opt, strict=strict)
        assert str(file) in str(info.value)

    @pytest.mark.parametrize("which", ["model", "optimizer"])
    def test_a_truncated_file_is_named(self, tmp_path, which):
        import mlx.nn as nn

        from multiopt_lab import load_checkpoint

        folder, *_ = self.folder(tmp_path, MultiOptimizer([optim.Adam(0.1), optim.SGD(0.1)],
                                                          ["ndim == 2"]))
        file = self.files(folder)[which]
        file.write_bytes(file.read_bytes()[:-20])
        target = nn.Linear(3, 2)
        before = [v.tolist() for _, v in tree_flatten(target.parameters())]
        with pytest.raises(ValueError, match="truncated or corrupted") as info:
            load_checkpoint(folder, target, MultiOptimizer([optim.Adam(0.1), optim.SGD(0.1)],
                                                           ["ndim == 2"]))
        assert str(file) in str(info.value)
        assert [v.tolist() for _, v in tree_flatten(target.parameters())] == before

    @pytest.mark.parametrize("text", ['{"step": "three"}', "[1]", "{not json",
                                      '{"step": 1, "files": {"model": "../../etc/passwd", '
                                      '"optimizer": "x"}}'])
    def test_a_crafted_checkpoint_json_is_a_value_error(self, tmp_path, text):
        import mlx.nn as nn

        from multiopt_lab import load_checkpoint

        folder, *_ = self.folder(tmp_path)
        (folder / "checkpoint.json").write_text(text)
        with pytest.raises(ValueError, match="checkpoint.json is corrupted"):
            load_checkpoint(folder, nn.Linear(3, 2), optim.SGD(0.1, momentum=0.9))


class TestStateCheckedAgainstTheLiveOptimizer:
    """Strict load_state compares every stored array with what this optimizer holds or makes."""

    @staticmethod
    def crafted(saved, change):
        arrays, metadata = mx.load(str(saved), return_metadata=True)
        change(arrays)
        metadata["crc32"] = checkpoint.checksum(arrays, metadata)
        mx.save_safetensors(str(saved), arrays, metadata=metadata)

    @pytest.mark.parametrize("key, value, words", [
        ("states.0.learning_rate", mx.full((3, 1, 1), 0.1), "'learning_rate' has shape (3, 1, 1)"),
        ("states.1.learning_rate", mx.array(0.01, mx.complex64), "dtype complex64"),
        ("states.0.step", mx.array(2.0), "'step' has shape () and dtype float32"),
        ("states.0.w.v", mx.zeros((3, 2), mx.complex64), "different state dtypes for 'w'"),
        ("states.1.layers.0.b.m", mx.zeros((2,), mx.float16), "different state dtypes for 'layers.0.b'"),
    ])
    def test_a_wrong_shape_or_dtype_is_refused_with_the_path(self, saved, key, value, words):
        self.crafted(saved, lambda arrays: arrays.__setitem__(key, value))
        assert words in load_fails(saved, "does not match")

    def test_without_strict_the_bad_entries_start_fresh_and_training_keeps_dtypes(self, saved):
        def change(arrays):
            arrays["states.0.learning_rate"] = mx.full((3, 1, 1), 0.1)
            arrays["states.0.w.v"] = mx.zeros((3, 2), mx.complex64)
        self.crafted(saved, change)
        target = optimizer()
        params = parameters()
        report = load_state(saved, target, strict=False, parameters=params)
        assert "w" in report.initialised
        grads = {"w": mx.full((3, 2), 0.5), "layers": [{"b": mx.ones((2,))}, {}, {"b": mx.ones((2,))}]}
        new = target.apply_gradients(grads, params)
        assert new["w"].shape == (3, 2) and new["w"].dtype == mx.float32

    def test_a_plain_mlx_optimizer_in_a_checkpoint_folder_is_checked_too(self, tmp_path):
        import mlx.nn as nn

        from multiopt_lab import load_checkpoint, save_checkpoint

        model, sgd = nn.Linear(3, 2), optim.SGD(0.1, momentum=0.9)
        sgd.init(model.trainable_parameters())
        folder = save_checkpoint(tmp_path / "ck", model, sgd, step=1)
        file = TestDistributedCheckpointFiles.files(folder)["optimizer"]
        arrays = mx.load(str(file))
        arrays["learning_rate"] = mx.full((3, 1, 1), 0.1)
        arrays["weight.v"] = arrays["weight.v"].astype(mx.complex64)
        mx.save_safetensors(str(file), arrays)
        target, target_sgd = nn.Linear(3, 2), optim.SGD(0.1, momentum=0.9)
        with pytest.raises(ValueError) as info:
            load_checkpoint(folder, target, target_sgd)
        assert "'learning_rate' has shape (3, 1, 1)" in str(info.value)
        assert "different state dtypes for 'weight'" in str(info.value)
        assert str(file) in str(info.value)
        load_checkpoint(folder, target, target_sgd, strict=False)
        target_sgd.update(target, {"weight": mx.ones((2, 3)), "bias": mx.ones((2,))})
        assert target.weight.shape == (2, 3) and target.weight.dtype == mx.float32


class TestOnePassReader:
    """read_checkpoint reads safetensors itself (every array at once): what mx.load gives,
    and a clear refusal of any header mx.load would not read."""

    def test_every_dtype_reads_as_mx_load_reads_it(self, tmp_path):
        from multiopt_lab._src.io.safetensors_reader import SafetensorsFile

        mx.random.seed(0)
        bits = mx.random.randint(0, 2**31 - 1, (2, 3), mx.int32)
        arrays = {f"a.{d}": mx.view(bits, mx.uint8)[:, :6].astype(d) if d != mx.bfloat16
                  else mx.view(bits.astype(mx.uint16), mx.bfloat16)
                  for d in (mx.bool_, mx.uint8, mx.uint16, mx.uint32, mx.uint64, mx.int8,
                            mx.int16, mx.int32, mx.int64, mx.float16, mx.bfloat16, mx.float32)}
        arrays["c64"] = (bits[0] + 1j * bits[1]).astype(mx.complex64)
        arrays["scalar"], arrays["empty"] = mx.array(2.5), mx.zeros((0, 3))
        file = tmp_path / "all.safetensors"
        mx.save_safetensors(str(file), arrays, metadata={"k": "v"})
        expected, metadata = mx.load(str(file), return_metadata=True)
        with SafetensorsFile(file) as stored:
            assert stored.metadata == metadata
            for key, want in expected.items():
                have = stored.arrays[key]
                assert (have.dtype, have.shape) == (want.dtype, want.shape), key
                assert bytes(memoryview(mx.view(have.reshape(-1), mx.uint8))) == \
                    bytes(memoryview(mx.view(want.reshape(-1), mx.uint8))), key

    @pytest.mark.parametrize("entry", [
        {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]},
        {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": [-1, 2], "data_offsets": [8, 0]},
        {"dtype": "F32", "shape": [-2, -1], "data_offsets": [0, 8]},
        {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]},
        {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
        {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]},
        {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]},
        [1, 2],
    ])
    def test_a_crafted_header_entry_is_refused(self, tmp_path, entry):
        header = json.dumps({"states.0.step": entry}).encode()
        file = tmp_path / "crafted.safetensors"
        file.write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
        load_fails(file, "truncated or corrupted")

    def test_a_key_that_is_also_a_parent_is_refused(self, tmp_path):
        file = tmp_path / "crafted.safetensors"
        mx.save_safetensors(str(file), {"states.0.step": mx.array(1), "states.0.w": mx.zeros((2,)),
                                        "states.0.w.v": mx.zeros((2,))})
        assert "also the parent" in load_fails(file, "corrupted")


def test_the_garbage_collector_is_back_after_a_load_good_or_bad(saved, tmp_path):
    import gc

    load_state(saved, optimizer(), parameters=parameters())
    assert gc.isenabled()
    load_fails(tmp_path / "nowhere.safetensors", "missing")
    assert gc.isenabled()
