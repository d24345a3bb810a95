# Tests the private modules' own units: multiopt_lab._src.io.checksum,
#   multiopt_lab._src.io.safetensors_reader, multiopt_lab._src.io.safetensors_writer.
"""The safetensors files save_state writes: readable by MLX, in key order, refusals by name."""

from __future__ import annotations

import io
import json
import os

import mlx.core as mx
import mlx.optimizers as optim
import pytest

from multiopt_lab import MultiOptimizer, load_state, save_state
from multiopt_lab._src.io.checksum import checksum, file_checksum
from multiopt_lab._src.io.safetensors_reader import SafetensorsFile
from multiopt_lab._src.io.safetensors_writer import SafetensorsArrays


def every_kind_of_array() -> dict:
    matrix = mx.arange(6, dtype=mx.float32).reshape(2, 3)
    return {
        "float32": matrix, "transposed": matrix.T,
        "sliced": mx.arange(16.0).reshape(4, 4)[::2, 1::2],
        "broadcast": mx.broadcast_to(mx.array([1.0, 2.0]), (3, 2)),
        "bfloat16": mx.array([1.5, -2.25, 3.0], mx.bfloat16),
        "float16": mx.array([1.0, 2.0], mx.float16), "complex64": mx.array([1 + 2j, 3 - 4j]),
        "bool": mx.array([True, False, True]), "int8": mx.array([-1, 2], mx.int8),
        "uint64": mx.array([2**40], mx.uint64), "scalar": mx.array(3.5),
        "empty": mx.zeros((0, 4)), "layers.ü.ñ": mx.ones((1,)),
        'a "quoted" back\\slash, tab\t and newline\n': mx.ones((2, 1)),
    }


def written(tmp_path, arrays, metadata=None) -> str:
    path = str(tmp_path / "a.safetensors")
    with open(path, "wb") as out:
        SafetensorsArrays(arrays).write(out, metadata)
    return path


def header_of(path) -> tuple[int, dict]:
    raw = open(path, "rb").read()
    size = int.from_bytes(raw[:8], "little")
    return size, json.loads(raw[8:8 + size])


def test_mlx_reads_every_dtype_and_layout_back_equal(tmp_path):
    arrays, metadata = every_kind_of_array(), {"note": "hi", "ü": "ñ"}
    loaded, loaded_metadata = mx.load(written(tmp_path, arrays, metadata), return_metadata=True)
    assert loaded_metadata == metadata
    assert sorted(loaded) == sorted(arrays)
    for key, array in arrays.items():
        assert (loaded[key].dtype, loaded[key].shape) == (array.dtype, array.shape), key
        assert mx.array_equal(loaded[key], array).item(), key


def test_the_header_is_sorted_and_the_bytes_follow_in_its_order(tmp_path):
    # What makes a load's checksum one pass over the data (mx.save_safetensors
    # writes the bytes in hash order).
    _, header = header_of(written(tmp_path, every_kind_of_array(), {"k": "v"}))
    assert list(header)[0] == "__metadata__"
    keys = list(header)[1:]
    assert keys == sorted(keys)
    offsets = [header[key]["data_offsets"] for key in keys]
    assert offsets[0][0] == 0
    assert all(last == first for (_, last), (first, _) in zip(offsets, offsets[1:]))


@pytest.mark.parametrize("names", [1, 2, 3, 4, 5, 6, 7, 8])
def test_the_data_starts_on_8_bytes_and_mlx_still_reads_the_padded_header(tmp_path, names):
    arrays = {"k" * n: mx.full((2,), float(n)) for n in range(1, names + 1)}
    path = written(tmp_path, arrays)
    size, _ = header_of(path)
    assert (8 + size) % 8 == 0
    loaded = mx.load(path)
    assert all(mx.array_equal(loaded[k], v).item() for k, v in arrays.items())


def test_the_checksum_of_a_file_matches_the_arrays_whoever_wrote_it(tmp_path):
    arrays, metadata = every_kind_of_array(), {"format": "x"}
    ours = written(tmp_path, arrays, metadata)
    theirs = str(tmp_path / "mlx.safetensors")
    mx.save_safetensors(theirs, arrays, metadata=metadata)
    for path in (ours, theirs):
        with SafetensorsFile(path) as stored:
            assert file_checksum(stored) == checksum(arrays, metadata), path


@pytest.mark.parametrize("arrays, metadata, message", [
    ({"w": mx.zeros((2,), mx.float64)}, None, "cannot save 'w': safetensors has no name for float64"),
    ({"\ud800": mx.zeros((1,))}, None, "cannot save '\\\\ud800': it is not valid text"),
    ({"w": mx.zeros((1,))}, {"m": "\udc00"}, "cannot save '\\\\udc00': it is not valid text"),
    ({"w": mx.zeros((1,))}, {"m": 3}, "cannot save the metadata 'm': expected a string"),
    ({"__metadata__": mx.zeros((1,))}, None, "cannot save an array named '__metadata__'"),
    ({"w": [1.0]}, None, "cannot save 'w': expected an mx.array, found a value of type list"),
])
def test_what_safetensors_cannot_hold_is_refused_by_name_before_anything_is_written(
        arrays, metadata, message):
    out = io.BytesIO()
    with pytest.raises(ValueError, match=message):
        SafetensorsArrays(arrays).write(out, metadata)
    assert out.getvalue() == b""


def test_a_float64_state_is_refused_by_path_and_the_previous_checkpoint_stays(tmp_path):
    optimizer = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.1)], ["ndim == 2"])
    params = {"w": mx.ones((2, 2)), "b": mx.ones((2,))}
    optimizer.apply_gradients(params, params)
    path = tmp_path / "opt.safetensors"
    save_state(path, optimizer)
    before = path.read_bytes()
    wide = {"w": mx.ones((2, 2)), "b": mx.ones((2,), mx.float64)}
    optimizer64 = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.1)], ["ndim == 2"])
    optimizer64.apply_gradients(wide, wide)
    with pytest.raises(ValueError, match="cannot save 'states.1.b.m': .*float64"):
        save_state(path, optimizer64)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["opt.safetensors"]
    assert load_state(path, optimizer, parameters=params).loaded == ("w", "b")
