"""The checksum ``save_state`` writes as metadata ``crc32``, and the same one of a file read back.

CRC-32 over the metadata (but ``crc32``) and every array's key, shape,
dtype and bytes, in key order. Saving computes it from the arrays' buffers;
loading from the bytes of the file itself, in one pass over a file written
in key order (:mod:`~multiopt_lab._src.io.safetensors_writer`), array by array
over one that ``mx.save_safetensors`` wrote.
"""

from __future__ import annotations

import zlib

from multiopt_lab._src.io.safetensors_reader import SafetensorsFile
from multiopt_lab._src.io.safetensors_writer import SafetensorsArrays

__all__ = ["checksum", "file_checksum"]


def checksum(arrays: dict | SafetensorsArrays, metadata: dict) -> str:
    """The checksum (8 hex digits) of ``arrays`` saved with ``metadata``.

    ``arrays``: a dict of arrays, or the :class:`SafetensorsArrays` about to
    be written (its bytes are then read once for the checksum and once to
    write).
    """
    laid_out = arrays if isinstance(arrays, SafetensorsArrays) else SafetensorsArrays(arrays)
    crc = _described(metadata, laid_out.keys, laid_out.layouts)
    return f"{laid_out.crc32(crc):08x}"


def file_checksum(stored: SafetensorsFile) -> str:
    """:func:`checksum` of an open file, from its header and bytes: the value
    :func:`checksum` gives for the arrays and metadata read from it."""
    keys = sorted(stored.keys)
    crc = _described(stored.metadata, keys, stored.layouts(keys))
    return f"{stored.crc32(keys, crc):08x}"


def _described(metadata: dict, keys: list[str], layouts: list[tuple]) -> int:
    """The CRC of the text that describes the metadata and arrays: the repr of the list
    ``[(key, value) of the metadata..., (key, shape, dtype name) of each array...]``,
    as the first checkpoints were written."""
    # Built from pieces: each distinct (shape, dtype) is written once, not per array.
    tails: dict[tuple, str] = {}
    for layout in set(layouts):
        shape, dtype = layout
        tails[layout] = f", {shape!r}, {str(dtype)!r})"
    described = [repr((k, v)) for k, v in sorted(metadata.items()) if k != "crc32"]
    described += [f"({key!r}{tails[layout]}" for key, layout in zip(keys, layouts)]
    return zlib.crc32(f"[{', '.join(described)}]".encode())
