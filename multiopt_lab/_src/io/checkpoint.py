"""Optimizer checkpoints: safetensors in MLX's layout, with the groups in the metadata.

The arrays are ``tree_flatten(optimizer.state)`` (``states.0.step``,
``states.1.layers.0.weight.m``...), exactly what
``mx.save_safetensors(file, dict(tree_flatten(mlx_multi_optimizer.state)))``
writes, so either optimizer loads the other's file. The metadata adds the
labels, the rule texts and each group's paths. The file is written in key
order (:mod:`~multiopt_lab._src.io.safetensors_writer`): header, then the bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

import mlx.core as mx  # noqa: F401 - the docstring examples use it

from multiopt_lab._src.arguments import check_flag, check_optimizer, check_path, found
from multiopt_lab._src.partition.arguments import check_parameters
from multiopt_lab._src.io.atomic import write_atomically
from multiopt_lab._src.io.checkpoint_read import metadata_json, read_checkpoint
from multiopt_lab._src.io.checksum import checksum
from multiopt_lab._src.io.expected_state import expected_groups, frozen_or_held
from multiopt_lab._src.io.gc_pause import gc_paused
from multiopt_lab._src.io.load_plan import plan_new_state
from multiopt_lab._src.io.safetensors_reader import read_header
from multiopt_lab._src.io.safetensors_writer import SafetensorsArrays
from multiopt_lab._src.optimizer.state_layout import per_parameter_paths
from multiopt_lab._src.trees.flatten import flatten_tree

__all__ = ["save_state", "load_state", "state_metadata", "LoadReport", "FORMAT"]

#: Written to the metadata key ``format``.
FORMAT = "multiopt_lab.optimizer_state/1"


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_state` did.

    Attributes:
        loaded (tuple[str, ...]): Paths whose state came from the file.
        initialised (tuple[str, ...]): Paths that started fresh (strict=False).
        unused (tuple[str, ...]): Paths in the file that the optimizer does not
            have (strict=False).
        labels (tuple[str, ...] | None): The labels stored in the file.

    Example:
        >>> import os, tempfile, mlx.optimizers as optim
        >>> from multiopt_lab import MultiOptimizer
        >>> opt = MultiOptimizer([optim.Adam(0.1), optim.SGD(0.1)], ["ndim == 2"])
        >>> opt.init({"w": mx.zeros((2, 2))})
        >>> path = os.path.join(tempfile.mkdtemp(), "opt.safetensors"); save_state(path, opt)
        >>> bigger = {"w": mx.zeros((2, 2)), "embed": {"weight": mx.zeros((4, 2))}}
        >>> load_state(path, opt, strict=False, parameters=bigger).initialised
        ('embed.weight',)
    """

    loaded: tuple[str, ...]
    initialised: tuple[str, ...] = ()
    unused: tuple[str, ...] = ()
    labels: tuple[str, ...] | None = None


#: Metadata keys save_state writes itself.
_OWN_METADATA = ("format", "labels", "rules", "optimizers", "paths", "crc32")


def save_state(file: str | os.PathLike, optimizer: Any, *,
               metadata: Mapping[str, str] | None = None) -> None:
    """Write ``optimizer.state`` to ``file`` (safetensors) atomically.

    The file is written next to its destination and renamed over it
    (:func:`~multiopt_lab._src.io.atomic.write_atomically`), so a failure or a
    crash mid-write leaves any previous file intact.

    Args:
        file (str | PathLike): Destination path (written exactly as given).
        optimizer: A ``MultiOptimizer`` (ours or MLX's) or any MLX optimizer.
        metadata (Mapping[str, str], optional): More facts to store with the
            state (the mlx-lm callback stores the iteration); read them with
            :func:`state_metadata`. Keys must not be the ones ``save_state``
            writes (``format``, ``labels``, ``rules``, ``optimizers``,
            ``paths``, ``crc32``). Default: ``None``.

    Example:
        >>> import os, tempfile, mlx.optimizers as optim
        >>> path = os.path.join(tempfile.mkdtemp(), "sgd.safetensors")
        >>> save_state(path, optim.SGD(0.1))
        >>> sorted(mx.load(path))
        ['learning_rate', 'step']
    """
    check_path(file, "save_state()", "file")
    check_optimizer(optimizer, "save_state()")
    extra = dict(metadata or {})
    for key, value in extra.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"save_state(): metadata must map str to str, found "
                            f"{key!r:.40}: {value!r:.40}")
        if key in _OWN_METADATA:
            raise ValueError(f"save_state(): the metadata key {key!r} is written by save_state "
                             f"itself ({', '.join(_OWN_METADATA)}); pick another key")
    state = optimizer.state
    if "states" in state:
        state = {"states": state["states"]}  # metric arrays are not state to resume
    flat = flatten_tree(state)
    metadata = {**extra, "format": FORMAT}
    subs = state["states"] if "states" in state else None
    if subs is not None:
        labels = getattr(optimizer, "labels", None)
        rules = [getattr(r, "text", None) for r in getattr(optimizer, "filters", ())]
        metadata["labels"] = json.dumps(list(labels) if labels else None)
        metadata["rules"] = json.dumps(rules[: len(subs) - 1])
        metadata["optimizers"] = json.dumps([type(o).__name__ for o in optimizer.optimizers])
        metadata["paths"] = json.dumps([per_parameter_paths(flat, f"states.{g}.")
                                        for g in range(len(subs))])
    arrays = SafetensorsArrays(dict(flat))  # computed, in key order
    metadata["crc32"] = checksum(arrays, metadata)
    write_atomically(file, lambda out: arrays.write(out, metadata))


def load_state(file: str | os.PathLike, optimizer: Any, strict: bool = True, *,
               parameters: Any = None) -> LoadReport:
    """Load a checkpoint written by :func:`save_state` or by MLX into ``optimizer``.

    The checkpoint's per-group paths (and state shapes) are compared with the
    optimizer's: those of ``parameters`` when given, else those it last
    stepped on. Pass ``parameters`` (or load after ``init``) to get the check
    before the first step.

    Frozen parameters: as MLX's optimizers do, a group keeps the state of a
    parameter that was frozen after it trained, and uses it again once the
    parameter is unfrozen; a checkpoint taken meanwhile holds it. Such
    entries load (strict or not) when ``parameters`` is the model and the
    rules route that frozen parameter to that group with its shape and
    dtype, or when the optimizer itself holds state for that path in that
    group. A parameter that trains now but has no state in the file (it was
    frozen when the file was written and never trained before) is
    "missing" for a strict load: load with the model frozen as it was, then
    unfreeze, or pass ``strict=False`` (it starts fresh, as in MLX).

    Args:
        file (str | PathLike): A safetensors file.
        optimizer (MultiOptimizer): Where to load; unchanged on any error.
        strict (bool, optional): Refuse a file whose groups hold other paths
            (the error names them). With ``False``, load what matches and
            initialise the rest (the report says which). Default: ``True``.
        parameters (optional): The model or its trainable parameters.

    Returns:
        LoadReport: What was loaded, initialised and left unused.

    Example:
        >>> import os, tempfile, mlx.nn as nn, mlx.optimizers as optim
        >>> from multiopt_lab import MultiOptimizer
        >>> model = nn.Linear(3, 2)
        >>> opt = MultiOptimizer([optim.Adam(0.1), optim.SGD(0.1)], ["ndim == 2"])
        >>> opt.init(model.trainable_parameters())
        >>> path = os.path.join(tempfile.mkdtemp(), "opt.safetensors"); save_state(path, opt)
        >>> load_state(path, opt, parameters=model).loaded
        ('weight', 'bias')

    Raises:
        ValueError: The file is not a multi-optimizer state, has another
            number of groups, or (strict) other paths or shapes.
    """
    check_path(file, "load_state()", "file")
    if not isinstance(getattr(optimizer, "optimizers", None), (list, tuple)):
        raise TypeError(f"load_state(): optimizer must be a MultiOptimizer (multiopt_lab's or "
                        f"MLX's), found {found(optimizer)}; for one MLX optimizer use "
                        "load_checkpoint, or optimizer.state = tree_unflatten(list(mx.load(file)"
                        ".items()))")
    check_flag(strict, "load_state()", "strict")
    if parameters is not None:
        check_parameters(parameters, "load_state()")
    with gc_paused():
        return _load_state(file, optimizer, strict, parameters)


def _load_state(file: str | os.PathLike, optimizer: Any, strict: bool,
                parameters: Any) -> LoadReport:
    index: dict[str, Any] = {}  # key prefix -> what the state tree holds there
    kinds: dict[str, tuple] = {}  # key -> (shape, dtype) of its array
    arrays, metadata, state = read_checkpoint(os.fspath(file), index, kinds)
    written = metadata.get("format", FORMAT)  # MLX's own files carry no format
    if written != FORMAT:
        raise ValueError(f"the checkpoint {file} has format {written!r}; this version of "
                         f"multiopt_lab reads {FORMAT!r} (and MLX's own files): load it with the "
                         "multiopt_lab version that wrote it")
    n = len(optimizer.optimizers)
    subs = state.get("states") if isinstance(state, dict) else None
    if not isinstance(subs, list) or not all(isinstance(s, dict) for s in subs):
        raise ValueError(f"expected a multi-optimizer state ('states.0...' arrays) in {file}, "
                         f"found keys {sorted(arrays)[:5]}")
    if len(subs) != n:
        raise ValueError(f"expected {n} groups ({', '.join(optimizer.labels)}), found "
                         f"{len(subs)} in {file}; build the optimizer with the same number of "
                         "groups as the one that saved it")
    stored_paths = _stored_paths(metadata, subs, str(file))
    labels = metadata_json(metadata, "labels", str(file))
    expected = expected_groups(optimizer, parameters)
    optional = frozen_or_held(optimizer, parameters, expected)
    new_subs, report = plan_new_state(optimizer, subs, stored_paths, expected, strict, str(file),
                                      index, kinds, optional)
    optimizer.state = {"states": new_subs}
    return LoadReport(report["loaded"], report["initialised"], report["unused"],
                      tuple(labels) if isinstance(labels, list) and labels else None)


def state_metadata(file: str | os.PathLike) -> dict[str, str]:
    """The metadata of a state file, read from its header alone (the arrays are not read).

    Raises:
        ValueError: The file is missing, truncated or not safetensors.
    """
    try:
        return read_header(os.fspath(file))
    except (ValueError, OSError) as err:
        raise ValueError(f"cannot read the checkpoint {file}: it is missing, truncated or "
                         f"corrupted ({type(err).__name__}: {err})") from None


def _stored_paths(metadata: dict, subs: list[dict], file: str) -> list[list[str]]:
    stored = metadata_json(metadata, "paths", file)
    if (isinstance(stored, list) and len(stored) == len(subs)
            and all(isinstance(p, list) and all(isinstance(q, str) for q in p) for p in stored)):
        return [list(p) for p in stored]
    return [per_parameter_paths(flatten_tree(s)) for s in subs]
