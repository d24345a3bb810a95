"""The checksum ``save_state`` writes as metadata ``crc32``, and the same one of a file read back.

CRC-32 over the metadata (but ``crc32``) and every array's key, shape,
dtype and bytes, in key order. Saving computes it from the arrays;
loading from the bytes of the file itself, so the arrays need not be
evaluated (or copied to numpy) one by one.

Example:
    >>> import os, tempfile, mlx.core as mx
    >>> from multiopt_lab.io.safetensors_reader import SafetensorsFile
    >>> arrays, metadata = {"a": mx.zeros((2,))}, {"format": "x"}
    >>> path = os.path.join(tempfile.mkdtemp(), "a.safetensors")
    >>> mx.save_safetensors(path, arrays, metadata=metadata)
    >>> with SafetensorsFile(path) as stored:
    ...     checksum(arrays, metadata) == file_checksum(stored)
    True
"""

from __future__ import annotations

import zlib

import mlx.core as mx
import numpy as np

from multiopt_lab.io.safetensors_reader import SafetensorsFile

__all__ = ["checksum", "file_checksum"]

#: Arrays are checksummed in pieces of about this many bytes, each evaluated at once.
_CHECKSUM_PIECE = 64 * 2**20
_CHECKSUM_ARRAYS = 4096


def checksum(arrays: dict, metadata: dict) -> str:
    """The checksum (8 hex digits) of ``arrays`` saved with ``metadata``.

    Example:
        >>> checksum({"a": mx.zeros((2,))}, {"format": "x"})
        '47f15b2e'
    """
    keys = sorted(arrays)
    crc = _described(metadata, keys, [(tuple(arrays[k].shape), arrays[k].dtype) for k in keys])
    # The CRC of concatenated bytes chains piece by piece, so many small arrays are
    # joined (one evaluation, one copy to numpy) instead of read back one by one.
    pieces, size = [], 0
    for key in keys:
        array = arrays[key]
        pieces.append(mx.view(array.reshape(-1), mx.uint8))
        size += array.nbytes
        if size >= _CHECKSUM_PIECE or len(pieces) >= _CHECKSUM_ARRAYS:
            crc, pieces, size = _crc_of(pieces, crc), [], 0
    return f"{_crc_of(pieces, crc):08x}"


def file_checksum(stored: SafetensorsFile) -> str:
    """:func:`checksum` of an open file, from its header and bytes: the value
    :func:`checksum` gives for the arrays and metadata read from it."""
    keys = sorted(stored.keys)
    crc = _described(stored.metadata, keys, stored.layouts(keys))
    return f"{stored.crc32(keys, crc):08x}"


def _described(metadata: dict, keys: list[str], layouts: list[tuple]) -> int:
    """The CRC of the text that describes the metadata and arrays: the repr of this list,
    as the first checkpoints were written."""
    names = {dtype: str(dtype) for dtype in {dtype for _, dtype in layouts}}
    described = [(k, v) for k, v in sorted(metadata.items()) if k != "crc32"]
    described += [(k, shape, names[dtype]) for k, (shape, dtype) in zip(keys, layouts)]
    return zlib.crc32(repr(described).encode("utf-8"))


def _crc_of(pieces: list, crc: int) -> int:
    if not pieces:
        return crc
    joined = pieces[0] if len(pieces) == 1 else mx.concatenate(pieces)
    return zlib.crc32(np.asarray(joined), crc)
