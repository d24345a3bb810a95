"""Optimizer-step timings: multiopt_lab.MultiOptimizer against what a user would otherwise use.

Run:  .venv/bin/python benchmarks/bench_optimizer.py [--quick]

Every row times the candidate and its baseline in the same process, in
alternating order, after a warm-up; each figure is the median of many
repetitions of one optimizer step with ``mx.eval`` of the parameters and the
state. Gradients are fixed arrays, so only the optimizer is measured.

The metrics rows race each setting against its own twin without metrics. For
the hidden-512 model a last row times one read of every gradient, old and
new parameter against the step: the least any metric implementation must
add, since MLX cannot fuse a reduction into the optimizer's kernels.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from functools import partial
from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map

from multiopt_lab import MultiOptimizer, compile_step

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import header, race, record  # noqa: E402


class Block(nn.Module):
    """A transformer-like block: two norms, attention projections, an MLP (12 arrays)."""

    def __init__(self, dims: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dims)
        self.attn = nn.MultiHeadAttention(dims, 4)
        self.norm2 = nn.LayerNorm(dims)
        self.mlp = [nn.Linear(dims, 2 * dims), nn.Linear(2 * dims, dims)]


class Stack(nn.Module):
    def __init__(self, blocks: int, dims: int):
        super().__init__()
        self.embed = nn.Embedding(64, dims)
        self.layers = [Block(dims) for _ in range(blocks)]
        self.head = nn.Linear(dims, 64)


def matrices(path, array):
    return array.ndim == 2


def make_models(blocks, dims):
    mx.random.seed(0)
    model = Stack(blocks, dims)
    mx.eval(model.parameters())
    grads = tree_map(lambda p: mx.random.normal(p.shape) * 1e-2, model.trainable_parameters())
    mx.eval(grads)
    return model, grads


def clone(model, blocks, dims):
    other = Stack(blocks, dims)
    other.update(tree_map(lambda p: mx.array(p), model.parameters()))
    mx.eval(other.parameters())
    return other


def timed_step(model, optimizer, grads, compiled=False):
    if compiled:
        optimizer.init(model.trainable_parameters())
        state = [model.state, optimizer.state]

        @partial(mx.compile, inputs=state, outputs=state)
        def step():
            optimizer.update(model, grads)

        def run():
            step()
            mx.eval(state)
        return run

    def run():
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state)
    return run


def timed_compile_step(model, optimizer, grads):
    step = compile_step(lambda: optimizer.update(model, grads), model, optimizer)

    def run():
        step()
        mx.eval(model.state, optimizer.state)
    return run


def row(name, arrays, ours, base, note=""):
    """Medians of both, and the median of the paired ratios (robust on a shared machine)."""
    ratio = statistics.median(o / b for o, b in zip(ours, base))
    ours_ms, base_ms = statistics.median(ours) * 1e3, statistics.median(base) * 1e3
    print(f"{name:<48} {arrays:>6} {ours_ms:>9.2f} {base_ms:>9.2f} {ratio:>7.3f}  {note}",
          flush=True)
    script = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    record(script, name.strip(), ours_ms, base_ms, ratio, note, size=f"{arrays} arrays")


def ten(run):
    """``run`` ten times in a row: one timing covers ten steps of one optimizer."""
    def ten_steps():
        for _ in range(10):
            run()
    return ten_steps


def per_step(times):
    """Times of :func:`ten` blocks, per step."""
    return [t / 10 for t in times]


def run_each_size(script: str, description: str,
                  bench_size: Callable[[int, int, argparse.Namespace], None]) -> None:
    """Command line of the step benchmarks: every model in a fresh process, or ``--size BxD``.

    A large model's steps depend on the state MLX's buffer cache and the heap
    were left in; a smaller model timed first in the same process leaves them
    in another state than a user's would be (it doubled the eager step at
    hidden 512 here). So without ``--size`` this prints the table's header and
    runs ``script --size BxD`` once per model, each in a process of its own.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small models, few repetitions")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--size", metavar="BLOCKSxHIDDEN", default=None,
                        help="one model only, e.g. 4x512")
    parser.add_argument("--sizes", metavar="BxD,BxD", default=None,
                        help="these models, each in its own process, e.g. 4x64,4x1024")
    args = parser.parse_args()
    if args.size is not None:
        blocks, dims = (int(n) for n in args.size.lower().split("x"))
        bench_size(blocks, dims, args)
        return
    header(os.path.splitext(os.path.basename(script))[0])
    print(f"{'case':<48} {'arrays':>6} {'ours ms':>9} {'base ms':>9} {'ratio':>7}  baseline",
          flush=True)
    extra = (["--quick"] if args.quick else []) + \
        (["--repeats", str(args.repeats)] if args.repeats else [])
    chosen = sizes(args.quick) if args.sizes is None else \
        [tuple(int(n) for n in size.lower().split("x")) for size in args.sizes.split(",")]
    for blocks, dims in chosen:
        subprocess.run([sys.executable, script, "--size", f"{blocks}x{dims}", *extra], check=True)


def sizes(quick):
    return [(4, 64), (32, 64)] if quick else [(4, 64), (32, 64), (128, 64), (4, 512)]


def main():
    run_each_size(__file__, __doc__, bench_size)


def bench_size(blocks: int, dims: int, args: argparse.Namespace) -> None:
    """Every row for one model: ``blocks`` transformer-like blocks of width ``dims``."""
    model, grads = make_models(blocks, dims)
    arrays = len(tree_flatten(grads))
    repeats = args.repeats or (10 if args.quick else max(31, 2000 // arrays))
    tag = f"{blocks} blocks, hidden {dims}"

    def pair():
        return [optim.SGD(1e-2, momentum=0.9), optim.AdamW(1e-3)]

    m1, m2 = clone(model, blocks, dims), clone(model, blocks, dims)
    ours = MultiOptimizer(pair(), [matrices])
    theirs = optim.MultiOptimizer(pair(), [matrices])
    t = race([timed_step(m1, ours, grads), timed_step(m2, theirs, grads)], repeats)
    row(f"[SGD+mom, AdamW] eager, {tag}", arrays, *t, "mlx MultiOptimizer")

    m1, m2, m3 = (clone(model, blocks, dims) for _ in range(3))
    ours = MultiOptimizer([optim.AdamW(1e-3), optim.AdamW(1e-3)], [matrices])
    theirs = optim.MultiOptimizer([optim.AdamW(1e-3), optim.AdamW(1e-3)], [matrices])
    plain = optim.AdamW(1e-3)
    t_ours, t_theirs, t_plain = race([timed_step(m1, ours, grads), timed_step(m2, theirs, grads),
                                      timed_step(m3, plain, grads)], repeats)
    row(f"[AdamW, AdamW] eager, {tag}", arrays, t_ours, t_plain, "one plain AdamW")
    row("  (mlx MultiOptimizer vs plain AdamW)", arrays, t_theirs, t_plain, "one plain AdamW")

    # Each metrics setting races only its own twin without metrics: in a
    # three-way race one optimizer's allocations move the next one's times.
    for every, label in [(1, "metrics every step"), (10, "metrics every 10 steps (per step)")]:
        m1, m2 = clone(model, blocks, dims), clone(model, blocks, dims)
        recording = MultiOptimizer(pair(), [matrices], metrics_every=every)
        none = MultiOptimizer(pair(), [matrices])
        t1, t0 = race([ten(timed_step(m1, recording, grads)), ten(timed_step(m2, none, grads))],
                      max(9, repeats // 3))
        row(f"{label}, {tag}", arrays, per_step(t1), per_step(t0), "no metrics")
    if dims >= 256:  # large arrays: memory-bound, so one read is a true lower bound
        m1 = clone(model, blocks, dims)
        none = MultiOptimizer(pair(), [matrices])
        t_read, t_step = race([ten(read_once(m1, none, grads)),
                               ten(timed_step(m1, none, grads))], max(9, repeats // 3))
        row(f"  (memory floor: read grads, old, new once), {tag}", arrays,
            per_step(t_read), per_step(t_step), "the step; metrics cost at least this")

    m1, m2 = clone(model, blocks, dims), clone(model, blocks, dims)
    ours = MultiOptimizer(pair(), [matrices])
    theirs = optim.MultiOptimizer(pair(), [matrices])
    t = race([timed_step(m1, ours, grads, True), timed_step(m2, theirs, grads, True)], repeats)
    row(f"[SGD+mom, AdamW] compiled, {tag}", arrays, *t, "mlx MultiOptimizer, compiled")

    m1, m2 = clone(model, blocks, dims), clone(model, blocks, dims)
    ours = MultiOptimizer(pair(), [matrices])
    theirs = optim.MultiOptimizer(pair(), [matrices])
    t = race([timed_compile_step(m1, ours, grads), timed_step(m2, theirs, grads, True)],
             repeats)
    row(f"[SGD+mom, AdamW] compile_step, {tag}", arrays, *t, "mlx MultiOptimizer, compiled")


def read_once(model, optimizer, grads):
    """Column sums of every gradient, parameter and updated parameter: one read of each.

    Any metric that sees the gradient, the old and the new parameters has to
    read them once more after the update (MLX cannot fuse a reduction into
    the optimizer's own kernels). When the arrays are large the step is
    memory-bound, and this read alone is the lowest possible cost of metrics:
    ``metrics every step >= 1 + floor ratio``. (With small arrays kernel
    launches dominate instead, and concatenation beats one read per array.)
    """
    optimizer.update(model, grads)
    old = [p for _, p in tree_flatten(model.trainable_parameters())]
    new = [p + 1e-3 for p in old]
    arrays = [g for _, g in tree_flatten(grads)] + old + new
    mx.eval(arrays)

    def column_sum(array):
        rows = array.reshape(-1, array.shape[-1]) if array.ndim > 1 else array[None]
        return mx.sum(rows, axis=0)

    def run():
        mx.eval([column_sum(a) for a in arrays])
    return run


if __name__ == "__main__":
    main()
