"""Arrays laid out as a safetensors file, written in key order: the header, then the bytes.

``mx.save_safetensors`` writes the arrays in hash order and costs seconds
for 100,000 small arrays (an optimizer's state). Here the header lists the
arrays sorted by key and their bytes follow in the same order, one after
another, written straight from each array's buffer (no copy). The file is
a plain safetensors file: ``mx.load`` and any safetensors reader read it.
Because the bytes lie in key order, a checksum over the arrays in key order
(:mod:`~multiopt_lab._src.io.checksum`) is one pass over the file's data.
"""

from __future__ import annotations

import json
import json.encoder
import zlib
from typing import Any, BinaryIO
from collections.abc import Iterator, Mapping

import mlx.core as mx

from multiopt_lab._src.io.safetensors_reader import DTYPES

__all__ = ["SafetensorsArrays", "SAFETENSORS_NAMES"]

#: MLX dtype -> its safetensors name (``mx.save_safetensors`` knows the same ones).
SAFETENSORS_NAMES = {mx_dtype: name for name, (mx_dtype, _) in DTYPES.items()
                     if not name.startswith("F8_")}  # those read as uint8, written as U8


class SafetensorsArrays:
    """Arrays ready to write as a safetensors file: computed, row-contiguous, in key order.

    Args:
        arrays (Mapping[str, mx.array]): The arrays by key (evaluated here).

    Attributes:
        keys (list[str]): The keys, sorted: the order of the header and of the bytes.
        layouts (list[tuple]): ``(shape, dtype)`` of each array, in that order.

    Raises:
        ValueError: A value is not an ``mx.array``, or its dtype has no
            safetensors name (``float64``); the message names the key.

integers, float16, bfloat16, float32 and complex64); cast it, e.g. to float32, before saving
    """

    def __init__(self, arrays: Mapping[str, mx.array]):
        if "__metadata__" in arrays:
            raise ValueError("cannot save an array named '__metadata__': a safetensors header "
                             "keeps that name for the metadata; rename it")
        self.keys = sorted(arrays)
        values = [arrays[key] for key in self.keys]
        for key, value in zip(self.keys, values):
            if not isinstance(value, mx.array):
                raise ValueError(f"cannot save {key[:80]!r}: expected an mx.array, found a value "
                                 f"of type {type(value).__name__}")
        mx.eval(values)
        names = {}
        for dtype in {value.dtype for value in values}:
            if dtype not in SAFETENSORS_NAMES:
                key = next(k for k, v in zip(self.keys, values) if v.dtype == dtype)
                raise ValueError(
                    f"cannot save {key[:80]!r}: safetensors has no name for "
                    f"{str(dtype).rpartition('.')[2]} (it holds bool, integers, float16, "
                    "bfloat16, float32 and complex64); cast it, e.g. to float32, before saving")
            names[dtype] = SAFETENSORS_NAMES[dtype]
        views = [memoryview(value) for value in values]  # type: ignore[arg-type]  # mx.array is a buffer
        # A transposed, sliced or broadcast array exports its buffer with strides; its
        # bytes are written in row order, as mx.save_safetensors does, from a copy.
        strided = [i for i, view in enumerate(views) if not view.c_contiguous]
        if strided:
            copies = [mx.contiguous(values[i]) for i in strided]
            mx.eval(copies)
            for i, copy in zip(strided, copies):
                views[i] = memoryview(copy)  # type: ignore[arg-type]  # mx.array is a buffer
        self._views = views
        self._names = names
        self.layouts = [(tuple(value.shape), value.dtype) for value in values]

    def crc32(self, crc: int = 0) -> int:
        """``zlib.crc32`` of every array's bytes in key order (the file's data), after ``crc``.
        """
        for view in self._views:
            crc = zlib.crc32(view, crc)
        return crc

    def write(self, out: BinaryIO, metadata: Mapping[str, str] | None = None) -> None:
        """Write the safetensors file to ``out`` (a binary file): header, then data.

        Raises:
            ValueError: A key or a metadata entry cannot be written as UTF-8
                (a lone surrogate), or a metadata value is not a string.
        """
        entries = []
        if metadata:
            for key, value in metadata.items():
                if not isinstance(value, str):
                    raise ValueError(f"cannot save the metadata {key!r}: expected a string, "
                                     f"found a value of type {type(value).__name__}")
            entries.append('"__metadata__":' + json.dumps(dict(metadata), ensure_ascii=False,
                                                          separators=(",", ":")))
        # Written entry by entry (json.dumps of 100,000 nested dicts costs a third of a
        # second): the dtype and shape part once per (shape, dtype), each key quoted as JSON.
        kinds = {layout: f'":{{"dtype":"{self._names[layout[1]]}","shape":'
                         f'{json.dumps(list(layout[0]), separators=(",", ":"))},"data_offsets":['
                 for layout in set(self.layouts)}
        offset, quoted = 0, _quoted
        for key, layout, view in zip(self.keys, self.layouts, self._views):
            end = offset + view.nbytes
            entries.append(f'{quoted(key)[:-1]}{kinds[layout]}{offset},{end}]}}')
            offset = end
        text = "{" + ",".join(entries) + "}"
        try:
            encoded = text.encode("utf-8")
        except UnicodeEncodeError:
            bad = next(k for k in [*(metadata or {}), *(metadata or {}).values(), *self.keys]
                       if not _is_utf8(k))
            raise ValueError(f"cannot save {bad[:80]!r}: it is not valid text (a lone "
                             "surrogate); name arrays and metadata with real characters") from None
        # Padded with spaces to a multiple of 8, as the safetensors library writes it,
        # so that the data starts aligned for readers that map the file.
        encoded += b" " * (-len(encoded) % 8)
        out.write(len(encoded).to_bytes(8, "little"))
        out.write(encoded)
        for piece in _pieces(self._views):
            out.write(piece)


#: JSON's quoting of a string, as json.dumps(..., ensure_ascii=False) writes it.
_quoted = json.encoder.encode_basestring

#: Arrays smaller than this are joined into pieces of about this size before writing.
_PIECE_BYTES = 1 << 22


def _pieces(views: list[memoryview]) -> Iterator[Any]:
    """The views in order, small neighbours joined: one write per few megabytes rather than
    one per array, without copying the large arrays."""
    run: list[memoryview] = []
    size = 0
    for view in views:
        if view.nbytes >= _PIECE_BYTES:
            if run:
                yield b"".join(run)
                run, size = [], 0
            yield view
            continue
        run.append(view)
        size += view.nbytes
        if size >= _PIECE_BYTES:
            yield b"".join(run)
            run, size = [], 0
    if run:
        yield b"".join(run)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
