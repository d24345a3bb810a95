"""How long ``save_state`` and a strict ``load_state`` take as the number of leaves grows.

Run: ``.venv/bin/python benchmarks/bench_checkpoint.py [--leaves 5000 20000 50000] [--repeat 3]``

A two-group ``MultiOptimizer`` (SGD with momentum on matrices, Adam on the
rest) over a tree of ``--leaves`` small parameters, stepped once. Prints the
median seconds of ``save_state``, of a strict ``load_state`` with
``parameters=`` (routes the tree and checks every path, shape and dtype), and
of ``mx.load`` alone (what reading the file costs, the floor), side by side.
The load is timed from the call to its return; freeing the optimizer it
filled (75,000 arrays at 50,000 leaves) happens after the clock stops and is
shown in its own column. Target (issue 16): strict load under 1 s at 50,000
leaves; it must grow linearly.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import mlx.core as mx
import mlx.optimizers as optim

from multiopt_lab import MultiOptimizer, load_state, save_state

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import header, median_seconds, record  # noqa: E402


def tree(leaves: int) -> dict:
    """``leaves`` parameters in blocks of four: two matrices, two vectors."""
    blocks = []
    for _ in range(leaves // 4):
        blocks.append({"q": {"weight": mx.zeros((4, 4)), "bias": mx.zeros((4,))},
                       "norm": {"weight": mx.zeros((4,)), "scale": mx.zeros((2, 4))}})
    return {"layers": blocks}


def make_optimizer() -> MultiOptimizer:
    return MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(1e-3)], ["ndim == 2"])


def timed_load(file: str, params: dict) -> tuple[float, float]:
    """Seconds of one strict ``load_state`` into a fresh optimizer, then of freeing it."""
    target = make_optimizer()
    start = time.perf_counter()
    load_state(file, target, parameters=params)
    loaded = time.perf_counter()
    del target
    return loaded - start, time.perf_counter() - loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leaves", type=int, nargs="+", default=[5_000, 20_000, 50_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    header("bench_checkpoint")
    print(f"{'leaves':>8} {'save s':>8} {'mx.load s':>10} {'strict load s':>14} {'per leaf us':>12} "
          f"{'freed s':>8}")
    for leaves in args.leaves:
        params = tree(leaves)
        optimizer = make_optimizer()
        optimizer.apply_gradients(params, params)
        mx.eval(optimizer.state)
        with tempfile.TemporaryDirectory() as folder:
            file = os.path.join(folder, "opt.safetensors")
            save = median_seconds(lambda: save_state(file, optimizer), args.repeat, warmup=0)
            read = median_seconds(lambda: mx.load(file), args.repeat, warmup=0)
            loads, frees = zip(*(timed_load(file, params) for _ in range(args.repeat)))
            load, free = statistics.median(loads), statistics.median(frees)
        print(f"{leaves:>8} {save:8.2f} {read:10.2f} {load:14.2f} {load / leaves * 1e6:12.1f} "
              f"{free:8.2f}")
        size = f"{leaves:,} leaves"
        record("bench_checkpoint", "strict load_state(parameters=)", load, read, load / read,
               "mx.load alone (the floor)", unit="s", size=size)
        record("bench_checkpoint", "save_state", save, None, None, "", unit="s", size=size)


if __name__ == "__main__":
    main()
