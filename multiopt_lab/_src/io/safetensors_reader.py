"""A safetensors file read in one pass: every array made at once, the bytes at hand.

``mx.load`` makes every array lazy: each is read from the file when it is
first evaluated, one by one, which costs seconds for 100,000 small arrays
(an optimizer's state). Here the file is mapped once, its header parsed
and checked, and every array copied out of the mapping, so that all are
computed already. While the file is open, the mapping also gives each
array's bytes for a checksum (:meth:`SafetensorsFile.crc32`).

Every problem with the file (shorter than its header says, a header that
is not JSON, an unknown dtype, data offsets that do not fit the shape or
lie outside the file) is a ``ValueError`` saying what is wrong.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import zlib
from typing import Any, BinaryIO
from collections.abc import Iterable

import mlx.core as mx
import numpy as np

__all__ = ["SafetensorsFile", "DTYPES", "read_header"]

#: safetensors dtype name -> (the MLX dtype ``mx.load`` gives, the numpy dtype of its bytes).
#: bfloat16 has no numpy dtype: its bytes are read as uint16, then viewed as bfloat16.
DTYPES = {name: (mx_dtype, np.dtype(np_dtype)) for name, mx_dtype, np_dtype in [
    ("BOOL", mx.bool_, np.bool_), ("U8", mx.uint8, np.uint8), ("U16", mx.uint16, np.uint16),
    ("U32", mx.uint32, np.uint32), ("U64", mx.uint64, np.uint64), ("I8", mx.int8, np.int8),
    ("I16", mx.int16, np.int16), ("I32", mx.int32, np.int32), ("I64", mx.int64, np.int64),
    ("F16", mx.float16, np.float16), ("BF16", mx.bfloat16, np.uint16),
    ("F32", mx.float32, np.float32), ("C64", mx.complex64, np.complex64),
    ("F8_E4M3", mx.uint8, np.uint8),  # as mx.load gives it: the raw bytes
]}

#: The dtypes a memoryview can be cast to (its format letter): mx.array makes an array
#: from such a view faster than from a numpy array (numpy serves the other dtypes).
_FORMATS = {"BOOL": "?", "U8": "B", "U16": "H", "U32": "I", "U64": "Q", "I8": "b", "I16": "h",
            "I32": "i", "I64": "q", "F32": "f", "F8_E4M3": "B"}


class SafetensorsFile:
    """An open safetensors file: its metadata and arrays, and its bytes while it is open.

    Use it as a context manager: the file is read on entry and its mapping
    closed on exit (the arrays stay).

    Attributes:
        metadata (dict[str, str]): The header's ``__metadata__`` (``{}`` when absent).
        keys (list[str]): The arrays' names, in the header's order.
        arrays (dict[str, mx.array]): The arrays, computed, by name.
        kinds (dict[str, tuple]): ``(shape, dtype)`` of each array, by name, as the
            header gives them (arrays of one shape and dtype share one tuple).

    Raises:
        ValueError: On entry: the file is shorter than its header says, or
            its header is not a valid safetensors header.
        OSError: On entry: the file cannot be opened (FileNotFoundError...).
    """

    def __init__(self, file: str | os.PathLike):
        self._file = os.fspath(file)
        self._handle: BinaryIO | None = None
        self._data: Any = b""

    def __enter__(self) -> SafetensorsFile:
        try:
            self._handle = open(self._file, "rb")
            size = os.fstat(self._handle.fileno()).st_size
            if size:  # mmap refuses an empty file
                self._data = mmap.mmap(self._handle.fileno(), 0, access=mmap.ACCESS_READ)
            self._read(size)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if isinstance(self._data, mmap.mmap):
            try:
                self._data.close()
            except BufferError:  # a view still held (an error mid-read): the GC closes it
                pass
        self._data = b""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _read(self, size: int) -> None:
        if size < 8:
            raise ValueError(f"it holds {size} bytes, fewer than the 8 of a header size")
        header_size = int.from_bytes(self._data[:8], "little")
        if header_size > size - 8:
            raise ValueError(f"its header claims {header_size} bytes, the file holds {size - 8}")
        try:
            header = json.loads(self._data[8:8 + header_size])
        except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
            raise ValueError(f"its header is not valid JSON ({err})") from None
        if not isinstance(header, dict):
            raise ValueError(f"its header is a JSON {type(header).__name__}, not an object")
        metadata = header.pop("__metadata__", None) or {}
        if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
            raise ValueError("its __metadata__ is not an object of strings")
        self.metadata: dict[str, str] = metadata
        self.keys: list[str] = list(header)
        self.arrays, self.kinds, self._spans = _arrays_of(header, self._data, 8 + header_size)

    def crc32(self, keys: Iterable[str], crc: int = 0) -> int:
        """``zlib.crc32`` of the named arrays' bytes, joined in the order given, after ``crc``."""
        spans = self._spans
        data = memoryview(self._data)
        try:
            # Arrays whose bytes follow each other in the file (all of them in a file
            # written in key order) are one run, checksummed in one call.
            run_first = run_last = 0
            for key in keys:
                first, last = spans[key]
                if first != run_last:
                    crc = zlib.crc32(data[run_first:run_last], crc)
                    run_first = first
                run_last = last
            crc = zlib.crc32(data[run_first:run_last], crc)
        finally:
            data.release()
        return crc

    def layouts(self, keys: Iterable[str]) -> list[tuple[tuple[int, ...], Any]]:
        """``(shape, dtype)`` of each named array, as the header gives them."""
        kinds = self.kinds
        return [kinds[key] for key in keys]


def read_header(file: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, reading its header alone (not the arrays).

    Raises:
        ValueError: The header is cut short or not a valid header.
        OSError: The file cannot be opened.
    """
    with open(file, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        start = handle.read(8)
        if len(start) < 8:
            raise ValueError(f"it holds {len(start)} bytes, fewer than the 8 of a header size")
        header_size = int.from_bytes(start, "little")
        if header_size > size - 8:
            raise ValueError(f"its header claims {header_size} bytes, the file holds {size - 8}")
        text = handle.read(header_size)
    try:
        header = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"its header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise ValueError(f"its header is a JSON {type(header).__name__}, not an object")
    metadata = header.get("__metadata__") or {}
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise ValueError("its __metadata__ is not an object of strings")
    return metadata


def _arrays_of(header: dict, data: Any, start: int) -> tuple[dict, dict, dict]:
    """The arrays the header describes, computed; per array its ``(shape, dtype)``; and
    ``(first, last)``: where its bytes lie in ``data``."""
    arrays, kinds, spans, views = {}, {}, {}, []
    data_size = len(data) - start
    # What a (dtype name, shape) makes, worked out once: an optimizer's state has
    # a few of them for 100,000 arrays. None: the pair is not valid.
    made: dict[tuple, tuple | None] = {}
    frombuffer, whole = np.frombuffer, memoryview(data)
    try:
        for key, entry in header.items():
            try:
                name, shape = entry["dtype"], tuple(entry["shape"])
                how: Any = made.get((name, shape), _UNSEEN)
                if how is _UNSEEN:
                    how = made[name, shape] = _how_to_make(name, shape)
                first, last = entry["data_offsets"]
                valid = (how is not None and 0 <= first <= last <= data_size
                         and last - first == how[2])
                if valid:
                    kind, np_dtype, _, count, cast = how
                    if cast is not None:
                        array = mx.array(whole[start + first:start + last].cast(cast, shape))  # type: ignore[arg-type]  # a buffer
                    else:
                        array = mx.array(frombuffer(data, np_dtype, count, start + first)
                                         .reshape(shape))
            except (KeyError, TypeError, ValueError, OverflowError):
                valid = False
            if not valid:
                raise ValueError(f"its header entry for {key[:80]!r} is not a dtype, shape and "
                                 f"data offsets inside the file: {str(entry)[:200]}")
            if name == "BF16":
                array = mx.view(array, mx.bfloat16)
                views.append(array)
            arrays[key] = array
            kinds[key] = kind
            spans[key] = (start + first, start + last)
    finally:
        whole.release()
    mx.eval(views)
    return arrays, kinds, spans


_UNSEEN = object()


def _how_to_make(name: Any, shape: tuple) -> tuple | None:
    """``((shape, mx dtype), numpy dtype, bytes, elements, memoryview format or None)`` for
    arrays of dtype ``name`` and ``shape``; None when either is not valid."""
    if name not in DTYPES or not all(type(n) is int and n >= 0 for n in shape):
        return None  # also refuses a float, a bool or a string in the shape
    mx_dtype, np_dtype = DTYPES[name]
    count = math.prod(shape)
    # A view cannot be cast to a shape with a zero; numpy serves those and the other dtypes.
    cast = _FORMATS.get(name) if count else None
    return (shape, mx_dtype), np_dtype, count * np_dtype.itemsize, count, cast
