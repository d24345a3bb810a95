# Imports the private module multiopt_lab._src.render.params (benchmarks measure internals).
"""What the findings cost on top of an assignment, at 1k, 10k and 50k parameter arrays.

Run: ``.venv/bin/python benchmarks/bench_findings.py [--sizes 1000,10000,50000] [--repeat 9]``

The rule editor recomputes an assignment and its findings on every pause in
typing; the findings must stay a small part of that. Per size, medians (ms)
measured in one process, interleaved, after a warm-up:

* ``assign (table)``: ``assign(table, rules, labels, optimizers=...)`` from
  the editor's table, selections cached (what a keystroke that changed one
  rule costs at least); the baseline;
* ``findings``: ``assignment.diagnostics`` alone, on a new assignment (rules,
  overlaps, near misses, every group's optimizer contract), the table's
  per-parameter roles already computed (the editor keeps its table);
* ``new table``: the same on a table object seen for the first time (roles
  and look-alike keys computed too: once per table);
* ``flags``: ``param_infos`` alone (what the tree and legend read), on an
  assignment whose findings are computed.

Each is timed on its own (its setup untimed), the four interleaved.

The model: an embedding, N layers of attention, norms, an MLP and a
convolution (12 arrays each), an output head; Muon on the layers' linear
weights (the rule also takes a norm, so that an error is found), SGD with
weight decay on the rest.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import mlx.optimizers as optim

from multiopt_lab import ParameterTable, assign
from multiopt_lab._src.render.params import param_infos

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_assign import Model  # noqa: E402
from report import header, record  # noqa: E402

RULES = ['within("Layer") and (module == "Linear" and ndim == 2 or glob("*.norm1.*"))',
         'module == "Conv2d"']
LABELS = ["muon", "conv", "rest"]


def optimizers():
    return [optim.Muon(0.02), optim.SGD(0.1, momentum=0.9), optim.SGD(0.1, weight_decay=1e-4)]


def timed(setup, measure) -> float:
    """Seconds ``measure(setup())`` takes, ``setup`` untimed."""
    prepared = setup()
    start = time.perf_counter()
    measure(prepared)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    header("bench_findings")
    print(f"{'parameters':>10}  {'assign (table)':>14}  {'findings':>9}  {'new table':>9}  "
          f"{'flags':>7}  {'findings / assign':>17}")
    opts = optimizers()
    for n in (int(s) for s in args.sizes.split(",")):
        table = ParameterTable.from_tree(Model(n))
        first = assign(table, RULES, LABELS, optimizers=opts)
        assert first.diagnostics.errors, "the benchmark's rule should give Muon a norm"

        def reassign():
            return assign(table, RULES, LABELS, optimizers=opts)

        def with_findings():
            assignment = reassign()
            assignment.diagnostics
            return assignment

        cases = [
            (lambda: None, lambda _: reassign()),                                  # assign (table)
            (reassign, lambda a: a.diagnostics),                                   # findings
            (lambda: assign(copy.copy(table), RULES, LABELS, optimizers=opts),    # a new table object:
             lambda a: a.diagnostics),                                             # no roles or keys cached
            (with_findings, param_infos),                                          # per-parameter flags
        ]
        times: list[list[float]] = [[] for _ in cases]
        for repetition in range(args.repeat + 2):  # two warm-up rounds, interleaved
            for i, (setup, measure) in enumerate(cases):
                seconds = timed(setup, measure)
                if repetition >= 2:
                    times[i].append(seconds)
        base, findings, new_table, flags = (statistics.median(t) * 1e3 for t in times)
        print(f"{len(table):>10,}  {base:>14.1f}  {findings:>9.1f}  {new_table:>9.1f}  "
              f"{flags:>7.1f}  {findings / base:>17.2f}", flush=True)
        record("bench_findings", "findings of a new assignment", findings, base, findings / base,
               "assign (table)", size=f"{len(table):,} parameters")


if __name__ == "__main__":
    main()
