# Imports the private module multiopt_lab._src.device (benchmarks measure internals).
"""A short run on the default device as a user would make it: train() with the monitor, saved.

Run:  python benchmarks/gpu/train_check.py --out DIR

TinyGPT on the bundled sequence task, Muon on the hidden matrices and AdamW
on the rest, per-group and per-parameter metrics every 5 steps, once eager
and once with ``compile=True``. Writes ``DIR/history.csv`` (both runs, the
device in each run's metadata, in ``history.runs.jsonl`` beside it; the
per-parameter rows in ``history.parameters.csv``) and ``DIR/monitor.png``
(the monitor's last figure), and prints the device, each run's time per
step and its last loss.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import mlx.core as mx
import mlx.optimizers as optim

import multiopt_lab as mol
from multiopt_lab import examples
from multiopt_lab._src.device import describe_device


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"train_check on {describe_device()}, mlx {mx.__version__}", flush=True)

    history = mol.History()
    monitor = mol.TrainingMonitorWidget(history)
    for run, compiled in (("eager", False), ("compile=True", True)):
        task = examples.sequence_task(seed=0)
        model = examples.TinyGPT(vocab_size=task.vocab_size)
        optimizer = mol.MultiOptimizer(
            [optim.Muon(0.02), optim.AdamW(1e-3)],
            ['ndim == 2 and not glob("*embed*")'],
            labels=["muon", "adamw"], compile=compiled)
        start = time.perf_counter()
        mol.train(model, optimizer, task.loss_fn, task.batch, steps=args.steps, history=history,
                  metrics_every=5, per_parameter=True, run=run, progress=False)
        seconds = time.perf_counter() - start
        loss = history.last("loss", run=run)
        print(f"{run:>14}: {1000 * seconds / args.steps:.2f} ms/step, last loss {loss:.4f}, "
              f"device in metadata: {history.metadata(run)['device']}", flush=True)
    history.save(args.out / "history.csv")
    monitor.figure.savefig(args.out / "monitor.png", dpi=80)
    monitor.close()
    print(f"written: {args.out / 'history.csv'} (and beside it), {args.out / 'monitor.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
