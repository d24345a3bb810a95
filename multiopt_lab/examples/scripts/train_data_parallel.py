"""Data-parallel training of a two-group MultiOptimizer, one process per rank.

Two ranks on this machine (MLX's ring backend over TCP), watched from a
notebook with ``History.follow("run.csv")``::

    mlx.launch --backend ring -n 2 --python "$(which python)" -- \\
        -m multiopt_lab.examples.scripts.train_data_parallel --steps 300 --history run.csv

Every rank builds the same model, takes its slice of each global batch,
averages the gradients and applies the same update; rank 0 alone prints,
records the History (streamed to ``--history`` as it goes) and writes
checkpoints. Run without ``mlx.launch`` it trains in one process on the same
global batches, to the same result within float rounding.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

from multiopt_lab import (
    DataParallel, History, MultiOptimizer, RankGuard, load_checkpoint, save_checkpoint,
)
from multiopt_lab._src.distributed.sync import check_same_partition
from multiopt_lab._src.optimizer.describe import optimizer_metadata


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The script's command-line options (``--help`` lists them)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--model", choices=("mlp", "gpt"), default="mlp",
        help="mlp: an MLP on scikit-learn's digits; gpt: TinyGPT reversing digit strings")
    add("--steps", type=int, default=100, help="steps to train (in total, counting a resumed checkpoint's)")
    add("--batch-size", type=int, default=64, help="global batch size, split evenly across the ranks")
    add("--seed", type=int, default=0, help="seed of the model's initialisation and of the data order")
    add("--history", type=Path, help="CSV file rank 0 streams the History to as it trains")
    add("--metrics-every", type=int, default=1, help="record per-group metrics every this many steps")
    add("--per-parameter", action="store_true",
        help="also record every parameter's metrics (equal on every rank: they follow the "
             "averaged gradients)")
    add("--checkpoint", type=Path, help="folder rank 0 saves a checkpoint to at the end")
    add("--checkpoint-every", type=int, default=0, help="also save every this many steps (0: only at the end)")
    add("--resume", type=Path, help="checkpoint folder every rank loads before training")
    add("--step-timeout", type=float, default=120.0,
        help="stop a rank when no step finished for this many seconds (0: never)")
    add("--print-every", type=int, default=10, help="rank 0 prints the loss every this many steps")
    add("--dump", help="test hook: each rank saves its final parameters and optimizer state to "
        "this path, '{rank}' replaced by its rank")
    add("--fail-at-step", type=int, help="test hook: raise at this step (0-based) ...")
    add("--kill-at-step", type=int, help="test hook: SIGKILL itself at this step (0-based) ...")
    add("--fail-rank", type=int, default=1, help="... on this rank")
    return parser.parse_args(argv)


def build(args: argparse.Namespace):
    """The model, its MultiOptimizer (Adam on matrices, SGD on the rest) and the data."""
    from multiopt_lab import examples

    mx.random.seed(args.seed)
    data: Any
    model: nn.Module
    if args.model == "mlp":
        data = examples.digits(batch_size=args.batch_size, seed=args.seed)
        model = examples.MLP(64, [64, 64], 10)
    else:
        data = examples.sequence_task("reverse", batch_size=args.batch_size, seed=args.seed)
        model = examples.TinyGPT(data.vocab_size, dims=32, layers=1, heads=2)
    optimizer = MultiOptimizer(
        [optim.Adam(3e-3), optim.SGD(0.05, momentum=0.9)], ["ndim == 2"],
        labels=["matrices", "vectors"], metrics_every=args.metrics_every,
        per_parameter=args.per_parameter,
    )
    return model, optimizer, data


def main(argv: list[str] | None = None) -> int:
    """Train on every rank; return the process exit status."""
    args = parse_args(argv)
    parallel = DataParallel()
    timeout = args.step_timeout or None
    with RankGuard(parallel.group, step_timeout_s=timeout) as guard:
        model, optimizer, data = build(args)
        # Same seed everywhere already; broadcasting makes it true by
        # construction, whatever a model's initialisation does.
        model.update(parallel.broadcast(model.parameters()))
        start = 0
        if args.resume is not None:
            start = load_checkpoint(args.resume, model, optimizer, parallel=parallel) or 0
        history = None
        if parallel.is_main and args.history is not None:
            args.history.parent.mkdir(parents=True, exist_ok=True)
            history = History(path=args.history)
            history.start_run(metadata={**optimizer_metadata(optimizer), "ranks": parallel.size,
                                        "global_batch_size": args.batch_size})
        loss_and_grad = nn.value_and_grad(model, data.loss_fn)
        metrics_seen = optimizer.metrics_step
        for step in range(start, args.steps):
            batch = parallel.shard(data.batch(step))
            loss, gradients = loss_and_grad(model, *batch)
            optimizer.update(model, parallel.average_gradients(gradients))
            mx.eval(loss, model.parameters(), optimizer.state)
            if step == start:  # a rank with other rules would train out of sync
                check_same_partition(parallel.group, optimizer)
            if step == args.kill_at_step and parallel.rank == args.fail_rank:
                os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer does
            if step == args.fail_at_step and parallel.rank == args.fail_rank:
                raise RuntimeError(f"failing on purpose at step {step} (--fail-at-step)")
            # Collective: every rank takes part, rank 0 alone records.
            global_loss = parallel.reduce({"loss": loss})["loss"]
            # The optimizer's metrics are global already (see docs/distributed.md).
            new_metrics = optimizer.metrics_step != metrics_seen
            metrics = optimizer.metrics if new_metrics else None
            parameters = optimizer.parameter_metrics if new_metrics and args.per_parameter else None
            metrics_seen = optimizer.metrics_step
            if history is not None:
                history.record(step + 1, loss=global_loss, metrics=metrics, parameters=parameters)
            if parallel.is_main and args.print_every and (step + 1) % args.print_every == 0:
                print(f"step {step + 1:5d}  loss {global_loss:.4f}", flush=True)
            if args.checkpoint and args.checkpoint_every and (step + 1) % args.checkpoint_every == 0:
                save_checkpoint(args.checkpoint, model, optimizer, step=step + 1, parallel=parallel)
            guard.beat(step)
        if history is not None:
            history.end_run()
            history.close()
        if args.checkpoint is not None:
            save_checkpoint(args.checkpoint, model, optimizer, step=args.steps, parallel=parallel)
        parallel.check_in_sync(model.parameters(), "parameters")
        parallel.check_in_sync(optimizer.state, "optimizer state")
        if args.dump:
            _dump(args.dump.replace("{rank}", str(parallel.rank)), model, optimizer)
    return 0


def _dump(path: str, model: nn.Module, optimizer: MultiOptimizer) -> None:
    arrays = {f"parameters.{k}": v for k, v in tree_flatten(model.parameters())}  # type: ignore[str-unpack]  # tree_flatten gives a list here (mlx types it list | dict)
    arrays.update({f"optimizer.{k}": v for k, v in tree_flatten(optimizer.state)  # type: ignore[str-unpack]  # tree_flatten gives a list here (mlx types it list | dict)
                   if isinstance(v, mx.array)})
    mx.save_safetensors(path, arrays)  # type: ignore[arg-type]  # arrays (tree_flatten's type says str too)


if __name__ == "__main__":
    sys.exit(main())
