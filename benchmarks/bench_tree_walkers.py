# Imports the private modules multiopt_lab._src.optimizer.leaves, multiopt_lab._src.trees.rebuild
#   (benchmarks measure internals).
"""The optimizer's own tree walkers against ``mlx.utils``, on the trees one step walks.

Run:  .venv/bin/python benchmarks/bench_tree_walkers.py [--quick]

Every step of ``MultiOptimizer`` flattens the gradients with their
parameters and rebuilds the result tree; ``skip_nonfinite`` also copies every
group's state containers. Each row times our walker and the ``mlx.utils``
way of doing the same, interleaved, on a transformer-like tree of 51 to
1,539 arrays; the figure is the median of the paired ratios (ours / mlx).
A walker stays ours only where ``mlx.utils`` is slower.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map

from multiopt_lab._src.optimizer.leaves import flatten_with_parameters
from multiopt_lab._src.trees.rebuild import copy_containers, rebuild_tree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_optimizer import Stack  # noqa: E402  (the same model as the step benchmark)
from report import header, record  # noqa: E402


def mlx_flatten_with_parameters(gradients, parameters):
    """The mlx.utils way: flatten the gradients, then the parameters mapped onto them."""
    flat = tree_flatten(gradients)
    params = [p for _, p in tree_flatten(tree_map(lambda g, p: p, gradients, parameters))]
    return [k for k, _ in flat], [g for _, g in flat], params


def mlx_rebuild_tree(template, leaves):
    it = iter(leaves)
    return tree_map(lambda _: next(it), template)


def race(pairs, repeats):
    out = []
    for ours, theirs in pairs:
        for _ in range(20):
            ours(), theirs()
        ratios, a, b = [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            ours()
            t1 = time.perf_counter()
            theirs()
            t2 = time.perf_counter()
            a.append(t1 - t0)
            b.append(t2 - t1)
            ratios.append((t1 - t0) / (t2 - t1))
        out.append((statistics.median(a), statistics.median(b), statistics.median(ratios)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 50 if args.quick else 400
    header("bench_tree_walkers")
    print(f"{'walker':<44} {'arrays':>6} {'ours us':>9} {'mlx us':>9} {'ratio':>7}")
    for blocks in ([4, 32] if args.quick else [4, 32, 128]):
        model = Stack(blocks, dims=16)
        params = model.trainable_parameters()
        grads = tree_map(lambda p: p, params)
        n = len(tree_flatten(grads))
        leaves = [g for _, g in tree_flatten(grads)]
        sgd = optim.SGD(0.1, momentum=0.9)
        sgd.init(params)
        state = sgd.state
        rows = [
            ("flatten gradients with parameters",
             lambda: flatten_with_parameters(grads, model),
             lambda: mlx_flatten_with_parameters(grads, model)),
            ("rebuild the result tree",
             lambda: rebuild_tree(grads, leaves), lambda: mlx_rebuild_tree(grads, leaves)),
            ("copy the state containers (skip_nonfinite)",
             lambda: copy_containers(state), lambda: tree_map(lambda x: x, state)),
        ]
        for (name, _, _), (ours, theirs, ratio) in zip(rows, race([r[1:] for r in rows], repeats)):
            print(f"{name:<44} {n:>6} {ours * 1e6:>9.1f} {theirs * 1e6:>9.1f} {ratio:>7.3f}")
            record("bench_tree_walkers", name, ours * 1e6, theirs * 1e6, ratio,
                   "the same walk with mlx.utils", unit="us", size=f"{n} arrays")


if __name__ == "__main__":
    main()
