"""Checkpoints in data-parallel training: rank 0 writes, every rank reads.

A checkpoint is a folder: ``model-<id>.safetensors`` (the parameters),
``optimizer-<id>.safetensors`` (:func:`~multiopt_lab.save_state`)
and ``checkpoint.json`` (the step and the names of those two files). Each
save writes two new files, then replaces ``checkpoint.json`` atomically: that
rename is the moment the new checkpoint exists. A save that fails (a full
disk) or is killed before it leaves the previous checkpoint whole and
loadable; the files of the previous save are removed only once the new one
is in place, as is what a killed save left behind. A folder without
``checkpoint.json`` is an unfinished checkpoint and is refused.

Every rank waits until rank 0 has written (or failed to write, and then every
rank raises), so no rank reads a half-written file or keeps training while
rank 0 is stuck. Loading reads the folder on every rank (on several hosts it
must be on a shared file system, or copied to the same path on each) and then
checks that all ranks hold the same parameters and optimizer state.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Any
from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from multiopt_lab._src.arguments import (check_model, check_optimizer, checked, is_flag, kind, number,
                                    optional, is_path)
from multiopt_lab._src.io.atomic import write_atomically, write_text_atomically
from multiopt_lab._src.io.checkpoint import load_state, save_state
from multiopt_lab._src.io.checkpoint_read import read_checkpoint
from multiopt_lab._src.io.load_plan import plan_single_state
from multiopt_lab._src.distributed.data_parallel import DataParallel
from multiopt_lab._src.distributed.status import OtherRankFailed

__all__ = ["save_checkpoint", "load_checkpoint", "run_on_main"]

INFO_FILE = "checkpoint.json"
#: Files a save writes; any of them that checkpoint.json does not name is left over.
_SAVED_FILE = re.compile(r"(model|optimizer)-[0-9a-f]{16}\.safetensors")


def run_on_main(parallel: DataParallel, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` on rank 0 only; every rank waits and raises if it failed.

    Returns ``fn``'s result on rank 0 and ``None`` on the other ranks.
    """
    return _agreed(parallel, fn, args, kwargs, everywhere=False)


def _agreed(parallel: DataParallel, fn: Callable, args: tuple, kwargs: dict, *,
            everywhere: bool) -> Any:
    """Run ``fn`` (on every rank or rank 0 only), then raise on every rank
    if it failed anywhere: one rank raising alone would leave the others
    waiting for it in their next collective."""
    result, error = None, None
    if everywhere or parallel.is_main:
        try:
            result = fn(*args, **kwargs)
        except Exception as caught:  # re-raised below, once the others know
            error = caught
    failed = parallel.reduce({"failed": float(error is not None)}, op="max")["failed"]
    if error is not None:
        raise error
    if failed:
        name = getattr(fn, "__qualname__", repr(fn))
        raise OtherRankFailed(f"{name} failed on another rank (its error is in that rank's "
                              f"output); rank {parallel.rank} stops too.")
    return result


@checked(directory=is_path, model=check_model, optimizer=check_optimizer,
         step=optional(number(low=0, integer=True)),
         parallel=optional(kind(DataParallel, "a DataParallel")))
def save_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module,
    optimizer: Any,
    *,
    step: int | None = None,
    parallel: DataParallel | None = None,
) -> Path:
    """Write ``model`` and ``optimizer`` to ``directory`` from rank 0.

    Call it on every rank (it is a collective). An existing checkpoint in
    ``directory`` is replaced only once the new one is whole: a save that
    fails leaves it loadable, and leaves no file behind.

    Args:
        directory (str | os.PathLike): The checkpoint folder.
        model (nn.Module): The model.
        optimizer: The optimizer (e.g. a MultiOptimizer).
        step (int, optional): The training step, returned by
            :func:`load_checkpoint`. Default: ``None``.
        parallel (DataParallel, optional): Default: ``DataParallel()``.

    Example:
        >>> import tempfile, mlx.optimizers as optim
        >>> model, opt = nn.Linear(2, 2), optim.SGD(0.1)
        >>> folder = save_checkpoint(tempfile.mkdtemp(), model, opt, step=3)
        >>> sorted(p.name.split("-")[0] for p in folder.iterdir())
        ['checkpoint.json', 'model', 'optimizer']
    """
    directory = Path(directory)
    parallel = parallel or DataParallel()
    mx.eval(model.parameters(), optimizer.state)

    def write() -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tag = secrets.token_hex(8)
        files = {"model": f"model-{tag}.safetensors", "optimizer": f"optimizer-{tag}.safetensors"}
        weights = dict(tree_flatten(model.parameters()))
        try:
            write_atomically(directory / files["model"],
                             lambda out: mx.save_safetensors(out, weights))
            save_state(directory / files["optimizer"], optimizer)
            info = {"step": step, "ranks": parallel.size, "files": files}
            write_text_atomically(directory / INFO_FILE, json.dumps(info) + "\n")
        except BaseException:
            for name in files.values():
                (directory / name).unlink(missing_ok=True)
            raise
        _remove_left_over(directory, keep=set(files.values()))

    run_on_main(parallel, write)
    return directory


def _remove_left_over(directory: Path, keep: set[str]) -> None:
    """Remove the files of earlier saves (the previous one, killed ones); never others."""
    for entry in directory.iterdir():
        name = entry.name
        if name not in keep and _SAVED_FILE.fullmatch(name):
            entry.unlink(missing_ok=True)
        elif name.startswith((".model", ".optimizer", f".{INFO_FILE}.")) and name.endswith(".tmp"):
            entry.unlink(missing_ok=True)  # a killed save's temporary file


@checked(directory=is_path, model=check_model, optimizer=check_optimizer, strict=is_flag,
         parallel=optional(kind(DataParallel, "a DataParallel")))
def load_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module,
    optimizer: Any,
    *,
    strict: bool = True,
    parallel: DataParallel | None = None,
) -> int | None:
    """Load a checkpoint made by :func:`save_checkpoint` on every rank.

    Call it on every rank. Afterwards every rank is checked to hold the
    same parameters and optimizer state, bit for bit.

    Returns:
        int | None: The ``step`` it was saved with.

    Raises:
        FileNotFoundError: ``directory`` holds no finished checkpoint.
        ValueError: The checkpoint does not fit the model or optimizer
            (nothing is changed then).
        OutOfSyncError: The ranks read different files.

    Example:
        >>> import tempfile, mlx.optimizers as optim
        >>> model, opt = nn.Linear(2, 2), optim.SGD(0.1)
        >>> folder = save_checkpoint(tempfile.mkdtemp(), model, opt, step=3)
        >>> load_checkpoint(folder, nn.Linear(2, 2), optim.SGD(0.1))
        3
    """
    directory = Path(directory)
    parallel = parallel or DataParallel()

    def read() -> int | None:
        step, files = _read_info(directory)
        model_file = directory / files["model"]
        weights, _, _ = read_checkpoint(str(model_file))
        # Check the weights first: load_state leaves the optimizer unchanged
        # on error, so nothing is changed unless both loads can succeed.
        _check_weights(model, weights, strict, model_file)
        optimizer_file = directory / files["optimizer"]
        if hasattr(optimizer, "optimizers"):  # a MultiOptimizer, ours or MLX's
            load_state(optimizer_file, optimizer, strict=strict, parameters=model)
        else:  # one MLX optimizer: its state, checked against the model and the live state
            _, _, state = read_checkpoint(str(optimizer_file))
            state, _ = plan_single_state(optimizer, state, model, strict, str(optimizer_file))
            optimizer.state = state
        model.load_weights(list(weights.items()), strict=strict)
        mx.eval(model.parameters(), optimizer.state)
        return step

    step = _agreed(parallel, read, (), {}, everywhere=True)
    parallel.check_in_sync(model.parameters(), "parameters loaded from the checkpoint")
    parallel.check_in_sync(optimizer.state, "optimizer state loaded from the checkpoint")
    return step


def _read_info(directory: Path) -> tuple[int | None, dict[str, str]]:
    """The step and the two file names ``checkpoint.json`` gives; errors say what is wrong."""
    info_file = directory / INFO_FILE
    try:
        text = info_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Expected a finished checkpoint in {directory} (with {INFO_FILE}), found "
            "none; on several hosts put checkpoints on a shared file system or copy "
            "them to the same path on every host.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {info_file}: {err}") from None
    try:
        info = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"{info_file} is corrupted: not valid JSON ({err})") from None
    step = info.get("step") if isinstance(info, dict) else None
    if not isinstance(info, dict) or not (step is None or type(step) is int):
        raise ValueError(f"{info_file} is corrupted: expected {{\"step\": int or null, ...}}, "
                         f"found {text[:80]!r}")
    files = info.get("files")
    if (not isinstance(files, dict) or set(files) != {"model", "optimizer"}
            or not all(isinstance(n, str) and _SAVED_FILE.fullmatch(n) for n in files.values())):
        raise ValueError(f"{info_file} is corrupted: expected the files model-<id>.safetensors "
                         f"and optimizer-<id>.safetensors, found {files!r:.120}")
    return step, files


def _check_weights(model: nn.Module, weights: dict, strict: bool, file: Path) -> None:
    """Raise unless ``model.load_weights(weights, strict)`` would succeed."""
    current = dict(tree_flatten(model.parameters()))
    problems = [f"{k}: expected shape {current[k].shape}, found {w.shape}"
                for k, w in weights.items() if k in current and w.shape != current[k].shape]
    if strict:
        problems += [f"{k}: not in the model" for k in sorted(weights.keys() - current.keys())]
        problems += [f"{k}: missing from the file" for k in sorted(current.keys() - weights.keys())]
    if problems:
        raise ValueError(
            f"Expected the weights in {file} to fit the model, found {len(problems)} "
            "mismatch(es):\n  " + "\n  ".join(problems[:10]) + "\nBuild the same model "
            "as the one that was saved (or pass strict=False to load what fits)."
        )
