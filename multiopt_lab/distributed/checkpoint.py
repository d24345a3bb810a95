"""Checkpoints in data-parallel training: rank 0 writes, every rank reads.

A checkpoint is a folder: ``model.safetensors`` (the parameters),
``optimizer.safetensors`` (:func:`~multiopt_lab.io.checkpoint.save_state`)
and ``checkpoint.json`` (the step), written last, so a folder without it is
an unfinished checkpoint and is refused. Every rank waits until rank 0 has
written (or failed to write, and then every rank raises), so no rank reads a
half-written file or keeps training while rank 0 is stuck. Loading reads the
folder on every rank (on several hosts it must be on a shared file system,
or copied to the same path on each) and then checks that all ranks hold the
same parameters and optimizer state.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from multiopt_lab.io.checkpoint import load_state, save_state
from multiopt_lab.distributed.data_parallel import DataParallel

__all__ = ["save_checkpoint", "load_checkpoint", "run_on_main"]

MODEL_FILE, OPTIMIZER_FILE, INFO_FILE = "model.safetensors", "optimizer.safetensors", "checkpoint.json"


def run_on_main(parallel: DataParallel, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` on rank 0 only; every rank waits and raises if it failed.

    Returns ``fn``'s result on rank 0 and ``None`` on the other ranks.

    Example:
        >>> run_on_main(DataParallel(), print, "only rank 0 says this")
        only rank 0 says this
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
        raise RuntimeError(f"{name} failed on another rank (its error is in that rank's "
                           f"output); rank {parallel.rank} stops too.")
    return result


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
    ``directory`` is replaced; its ``checkpoint.json`` is removed first, so
    a crash half-way leaves an unfinished folder, never a mixed one.

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
        >>> sorted(p.name for p in folder.iterdir())
        ['checkpoint.json', 'model.safetensors', 'optimizer.safetensors']
    """
    directory = Path(directory)
    parallel = parallel or DataParallel()
    mx.eval(model.parameters(), optimizer.state)

    def write() -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / INFO_FILE).unlink(missing_ok=True)
        partial = directory / f"{MODEL_FILE}.partial.safetensors"
        mx.save_safetensors(str(partial), dict(tree_flatten(model.parameters())))
        os.replace(partial, directory / MODEL_FILE)
        save_state(directory / OPTIMIZER_FILE, optimizer)
        info = {"step": step, "ranks": parallel.size}
        (directory / INFO_FILE).write_text(json.dumps(info))

    run_on_main(parallel, write)
    return directory


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
        info_file = directory / INFO_FILE
        if not info_file.exists():
            raise FileNotFoundError(
                f"Expected a finished checkpoint in {directory} (with {INFO_FILE}), found "
                "none; on several hosts put checkpoints on a shared file system or copy "
                "them to the same path on every host."
            )
        step = json.loads(info_file.read_text())["step"]
        weights = mx.load(str(directory / MODEL_FILE))
        # Check the weights first: load_state leaves the optimizer unchanged
        # on error, so nothing is changed unless both loads can succeed.
        _check_weights(model, weights, strict, directory / MODEL_FILE)
        if hasattr(optimizer, "optimizers"):  # a MultiOptimizer, ours or MLX's
            load_state(directory / OPTIMIZER_FILE, optimizer, strict=strict, parameters=model)
        else:  # one MLX optimizer: its state as MLX itself would restore it
            saved = mx.load(str(directory / OPTIMIZER_FILE))
            optimizer.state = tree_unflatten(list(saved.items()))
        model.load_weights(list(weights.items()), strict=strict)
        mx.eval(model.parameters(), optimizer.state)
        return step

    step = _agreed(parallel, read, (), {}, everywhere=True)
    parallel.check_in_sync(model.parameters(), "parameters loaded from the checkpoint")
    parallel.check_in_sync(optimizer.state, "optimizer state loaded from the checkpoint")
    return step


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
