# Imports the private module multiopt_lab._src.training.progress (benchmarks measure internals).
"""What recording and watching a run costs, and how fast a big History plots.

Run: ``.venv/bin/python benchmarks/bench_training.py [--steps 100] [--repeats 5]``

Part 1 (training overhead). A TinyGPT on the reverse task, steps of about
20 ms on a laptop CPU. Side by side, in one process, interleaved, with a
warm-up and the median of several repetitions:

- ``mlx loop``: what a user writes without this package: ``nn.value_and_grad``,
  ``mlx.optimizers.MultiOptimizer`` (AdamW on matrices, AdamW on the rest),
  ``mx.eval``, the loss kept in a Python list;
- ``train, metrics every 10 + monitor``: ``multiopt_lab.train`` with our
  MultiOptimizer recording per-group metrics every 10 steps into a History,
  a TrainingMonitorWidget redrawing live and the progress bar.

Target: the second costs at most 5% more than the first.

Part 2 (plotting). A History of 100,000 rows (three groups, five metrics
every 10 steps, the loss every step): time to draw the monitor's four-panel
figure and render it to PNG, against the same four panels drawn by hand with
pandas and matplotlib. Target: under a second.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from matplotlib.figure import Figure

from multiopt_lab import History, examples

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import header, record  # noqa: E402
from multiopt_lab import MultiOptimizer, TrainingMonitorWidget, train
from multiopt_lab._src.training.progress import TextProgress
from multiopt_lab.plots import plot_training

TASK = examples.sequence_task("reverse", length=4, batch_size=32)


def fresh_model() -> nn.Module:
    mx.random.seed(0)
    return examples.TinyGPT(TASK.vocab_size, dims=64, layers=1, heads=4)


def mlx_loop(steps: int) -> float:
    model = fresh_model()
    optimizer = optim.MultiOptimizer([optim.AdamW(1e-3), optim.AdamW(1e-3)], [lambda path, array: array.ndim == 2])
    loss_and_grad = nn.value_and_grad(model, TASK.loss_fn)
    losses = []
    start = time.perf_counter()
    for step in range(steps):
        loss, gradients = loss_and_grad(model, *TASK.batch(step))
        optimizer.update(model, gradients)
        mx.eval(loss, model.state, optimizer.state)
        losses.append(loss.item())
    return time.perf_counter() - start


def lab_train(steps: int) -> float:
    model = fresh_model()
    optimizer = MultiOptimizer([optim.AdamW(1e-3), optim.AdamW(1e-3)], ["ndim == 2"], labels=["matrices", "rest"])
    history = History()
    monitor = TrainingMonitorWidget(history)
    progress = lambda total, stop: TextProgress(total, stop, stream=io.StringIO())  # noqa: E731
    start = time.perf_counter()
    train(model, optimizer, TASK.loss_fn, TASK.batch, steps, history=history, metrics_every=10, progress=progress)
    elapsed = time.perf_counter() - start
    monitor.close()
    return elapsed


def big_history(rows: int = 100_000) -> History:
    history = History()
    history.start_run("big", {"labels": ["embed", "matrices", "vectors"]})
    rng = np.random.default_rng(0)
    step = 0
    while len(history) < rows:
        step += 1
        metrics = None
        if step % 10 == 1:
            metrics = {
                group: {"update_norm": rng.random(), "grad_norm": rng.random(), "param_norm": 1.0, "update_ratio": 1e-3 * rng.random(), "learning_rate": 1e-3}
                for group in ("embed", "matrices", "vectors", "total")
            }
        history.record(step, loss=1.0 / step, metrics=metrics)
    return history


def lab_plot(history: History) -> float:
    start = time.perf_counter()
    figure = plot_training(history)
    figure.savefig(io.BytesIO(), format="png", dpi=72)
    return time.perf_counter() - start


def pandas_plot(history: History) -> float:
    start = time.perf_counter()
    frame = history.frame
    figure = Figure(figsize=(10, 6), layout="constrained")
    axes = figure.subplots(2, 2).ravel()
    loss = frame[frame.metric == "loss"]
    axes[0].plot(loss.step, loss.value)
    for ax, metric in zip(axes[1:], ("update_norm", "update_ratio", "learning_rate")):
        wide = frame[(frame.metric == metric) & (frame.group != "total")].pivot(index="step", columns="group", values="value")
        for group in wide:
            ax.plot(wide.index, wide[group], label=group)
        ax.legend()
    axes[2].set_yscale("log")
    figure.savefig(io.BytesIO(), format="png", dpi=72)
    return time.perf_counter() - start


def median_of(function, repeats: int, *args) -> float:
    return statistics.median(function(*args) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    mlx_loop(20), lab_train(20)  # warm-up
    times = {"mlx loop": [], "train, metrics every 10 + monitor": []}
    for _ in range(args.repeats):  # interleaved, so drift hits both alike
        times["mlx loop"].append(mlx_loop(args.steps))
        times["train, metrics every 10 + monitor"].append(lab_train(args.steps))
    base = statistics.median(times["mlx loop"])
    header("bench_training")
    print(f"Training, {args.steps} steps, median of {args.repeats}")
    print(f"{'loop':<38}{'ms/step':>10}{'ratio':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<38}{1000 * median / args.steps:>10.2f}{median / base:>8.3f}")
    lab = statistics.median(times["train, metrics every 10 + monitor"])
    record("bench_training", "train(), metrics every 10 + monitor", 1000 * lab / args.steps,
           1000 * base / args.steps, lab / base, "bare MLX loop", size=f"{args.steps} steps")

    history = big_history()
    history.frame  # built once, as the monitor would have it
    lab_plot(history), pandas_plot(history)  # warm-up
    lab = median_of(lab_plot, args.repeats, history)
    hand = median_of(pandas_plot, args.repeats, history)
    print(f"\nPlotting a History of {len(history):,} rows (four panels + PNG), median of {args.repeats}")
    print(f"{'how':<38}{'seconds':>10}{'ratio':>8}")
    print(f"{'pandas + matplotlib by hand':<38}{hand:>10.3f}{1.0:>8.3f}")
    print(f"{'multiopt_lab.plots.plot_training':<38}{lab:>10.3f}{lab / hand:>8.3f}")
    record("bench_training", "plot_training of a History", lab * 1e3, hand * 1e3, lab / hand,
           "pandas + matplotlib by hand", size=f"{len(history):,} rows")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "big.csv")
        history.save(path)
        start = time.perf_counter()
        History.load(path).frame  # noqa: B018
        print(f"{'History.load of the saved CSV + frame':<38}{time.perf_counter() - start:>10.3f}")

if __name__ == "__main__":
    main()
