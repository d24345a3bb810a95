"""Eager training loops: MultiOptimizer(compile=True) against mlx.optimizers.MultiOptimizer.

Run:  .venv/bin/python benchmarks/bench_compiled_update.py [--quick] [--repeats N]

Same models as ``bench_optimizer.py`` (transformer-like blocks, hidden 64 with
4, 32 and 128 blocks; hidden 512 with 4), [SGD with momentum on matrices,
AdamW on the rest]. Rows, each candidate raced against its baseline in this
process (alternating, after a warm-up; medians of the times and of the
paired ratios):

* update only: ``optimizer.update(model, grads)`` + ``mx.eval`` with fixed
  gradients, ``compile=True`` and the default (bit-exact) mode against MLX's
  ``MultiOptimizer``;
* whole eager step: forward, backward and update of a small token batch;
* metrics: every step and every 10 steps, each against its own twin
  without metrics, default mode and ``compile=True``.

Each model runs in a fresh process of its own (see ``bench_optimizer.py``).
"""

from __future__ import annotations

import argparse
import os
import sys

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_optimizer import (Block, Stack, clone, make_models, matrices,  # noqa: E402
                             per_step, race, row, run_each_size, ten)

from multiopt_lab import MultiOptimizer  # noqa: E402


def _block_forward(block: Block, x: mx.array) -> mx.array:
    h = block.norm1(x)
    x = x + block.attn(h, h, h)
    return x + block.mlp[1](nn.gelu(block.mlp[0](block.norm2(x))))


def _forward(model: Stack, tokens: mx.array) -> mx.array:
    x = model.embed(tokens)
    for block in model.layers:
        x = _block_forward(block, x)
    return model.head(x)


def _loss(model: Stack, tokens: mx.array) -> mx.array:
    logits = _forward(model, tokens[:, :-1])
    return nn.losses.cross_entropy(logits, tokens[:, 1:], reduction="mean")


def pair():
    return [optim.SGD(1e-2, momentum=0.9), optim.AdamW(1e-3)]


def update_only(model, optimizer, grads):
    def run():
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state)
    return run


def whole_step(model, optimizer, tokens):
    loss_and_grad = nn.value_and_grad(model, _loss)

    def run():
        loss, grads = loss_and_grad(model, tokens)
        optimizer.update(model, grads)
        mx.eval(loss, model.parameters(), optimizer.state)
    return run


def main():
    run_each_size(__file__, __doc__, bench_size)


def bench_size(blocks: int, dims: int, args: argparse.Namespace) -> None:
    """Every row for one model: ``blocks`` transformer-like blocks of width ``dims``."""
    model, grads = make_models(blocks, dims)
    arrays = len(tree_flatten(grads))
    repeats = args.repeats or (10 if args.quick else max(21, 1500 // arrays))
    tag = f"{blocks} blocks, hidden {dims}"
    models = [clone(model, blocks, dims) for _ in range(3)]
    fused = MultiOptimizer(pair(), [matrices], compile=True)
    exact = MultiOptimizer(pair(), [matrices])
    theirs = optim.MultiOptimizer(pair(), [matrices])
    t_fused, t_exact, t_theirs = race(
        [update_only(m, o, grads) for m, o in zip(models, (fused, exact, theirs))], repeats)
    row(f"update, compile=True, {tag}", arrays, t_fused, t_theirs, "mlx MultiOptimizer")
    row(f"update, default (bit-exact), {tag}", arrays, t_exact, t_theirs, "mlx MultiOptimizer")

    mx.random.seed(1)
    tokens = mx.random.randint(0, 64, (4, 17))
    models = [clone(model, blocks, dims) for _ in range(3)]
    fused = MultiOptimizer(pair(), [matrices], compile=True)
    exact = MultiOptimizer(pair(), [matrices])
    theirs = optim.MultiOptimizer(pair(), [matrices])
    t_fused, t_exact, t_theirs = race(
        [whole_step(m, o, tokens) for m, o in zip(models, (fused, exact, theirs))],
        max(11, repeats // 2))
    row(f"whole eager step, compile=True, {tag}", arrays, t_fused, t_theirs,
        "mlx MultiOptimizer")
    row(f"whole eager step, default, {tag}", arrays, t_exact, t_theirs, "mlx MultiOptimizer")

    for compiled in (False, True):
        mode = "compile=True" if compiled else "default"
        for every, label in [(1, "metrics every step"), (10, "metrics every 10 steps")]:
            models = [clone(model, blocks, dims) for _ in range(2)]
            optimizers = [MultiOptimizer(pair(), [matrices], metrics_every=e, compile=compiled)
                          for e in (every, None)]
            t_metrics, t_none = race([ten(update_only(m, o, grads))
                                      for m, o in zip(models, optimizers)],
                                     max(7, repeats // 3), warmup=2)
            row(f"{label}, {mode}, {tag}", arrays, per_step(t_metrics), per_step(t_none),
                "no metrics, same mode")

if __name__ == "__main__":
    main()
