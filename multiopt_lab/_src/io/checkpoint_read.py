"""Read a checkpoint file: its arrays, its metadata and its state tree, or say what is wrong.
"""

from __future__ import annotations

import json
from itertools import repeat
from typing import Any

from multiopt_lab._src.io.checksum import file_checksum
from multiopt_lab._src.io.safetensors_reader import SafetensorsFile
from multiopt_lab._src.trees.unflatten import ListIndexTooLarge, unflatten

__all__ = ["read_checkpoint", "metadata_json"]


def read_checkpoint(file: str, index: dict[str, Any] | None = None,
                    kinds: dict[str, tuple] | None = None) -> tuple[dict, dict, Any]:
    """``(arrays, metadata, state tree)`` of a safetensors checkpoint, or a ValueError saying
    what is wrong with the file (missing, truncated, corrupted, not a checkpoint).

    The arrays come computed, read in one pass (:mod:`~multiopt_lab._src.io.safetensors_reader`);
    a file with metadata ``crc32`` must match it (:mod:`~multiopt_lab._src.io.checksum`).
    ``index`` receives :func:`~multiopt_lab._src.trees.unflatten.unflatten`'s index of the
    tree, ``kinds`` each array's ``(shape, dtype)`` by key.
    """
    try:
        with SafetensorsFile(file) as stored:
            metadata = stored.metadata
            written = metadata.get("crc32")
            found = None if written is None else file_checksum(stored)
            if written is not None and written != found:
                raise _Corrupted(f"is corrupted: its contents do not match the checksum "
                                 f"written with them (crc32 {written}, found {found}); "
                                 "restore it from a copy")
            _check_keys(stored.keys)
            arrays = stored.arrays
            if kinds is not None:
                kinds.update(stored.kinds)
        state = unflatten(list(arrays.items()), index) if arrays else {}
    except ListIndexTooLarge as err:
        raise ValueError(f"the checkpoint {file} is corrupted or not an optimizer state: "
                         f"{err}") from None
    except _Corrupted as err:
        raise ValueError(f"the checkpoint {file} {err}") from None
    except (ValueError, OSError) as err:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"cannot read the checkpoint {file}: it is missing, truncated or "
                         f"corrupted ({type(err).__name__}: {err})") from None
    return arrays, metadata, state


class _Corrupted(Exception):
    """A file that reads as safetensors but is not one to load (message: after its name)."""


def _check_keys(keys: list[str]) -> None:
    # unflatten recurses once per missing parent: a key must not be deeper than that allows.
    if keys and max(map(str.count, keys, repeat("."))) >= 64:  # counted in C, key by key
        deep = next(k for k in keys if k.count(".") >= 64)
        raise _Corrupted(f"is corrupted or not an optimizer state: key {deep[:80]!r} is "
                         "nested too deep (64 levels or more)")


def metadata_json(metadata: dict, key: str, file: str) -> Any:
    """``json.loads(metadata[key])`` (None when absent); ValueError naming the key when broken.
    """
    if key not in metadata:
        return None
    try:
        return json.loads(metadata[key])
    except (ValueError, RecursionError) as err:
        raise ValueError(f"the checkpoint {file} is corrupted: its metadata {key!r} is not valid "
                         f"JSON ({err})") from None

