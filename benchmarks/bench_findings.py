"""What the findings cost on top of an assignment, at 1k, 10k and 50k parameter arrays.

Run: ``.venv/bin/python benchmarks/bench_findings.py [--sizes 1000,10000,50000] [--repeat 9]``

The rule editor recomputes an assignment and its findings on every pause in
typing; the findings must stay a small part of that. Per size, medians (ms)
measured in one process, interleaved, after a warm-up:

* ``assign (table)``: ``assign(table, rules, labels, optimizers=...)`` from
  the editor's table, selections cached (what a keystroke that changed one
  rule costs at least); the baseline;
* ``findings``: ``assignment.diagnostics`` on that new assignment (rules,
  overlaps, near misses, every group's optimizer contract), the table's
  per-parameter roles already computed (the editor keeps its table);
* ``findings, new table``: the same on a table seen for the first time
  (roles and look-alike keys computed too);
* ``per-parameter flags``: ``param_infos`` (what the tree and legend read).

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

import mlx.optimizers as optim

from multiopt_lab.partition.assignment import assign
from multiopt_lab.partition.table import ParameterTable
from multiopt_lab.render.params import param_infos

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_assign import Model  # noqa: E402
from report import header, race, record  # noqa: E402

RULES = ['within("Layer") and (module == "Linear" and ndim == 2 or glob("*.norm1.*"))',
         'module == "Conv2d"']
LABELS = ["muon", "conv", "rest"]


def optimizers():
    return [optim.Muon(0.02), optim.SGD(0.1, momentum=0.9), optim.SGD(0.1, weight_decay=1e-4)]


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

        def findings():
            reassign().diagnostics

        def findings_new_table():
            fresh = copy.copy(table)  # a new table object: no roles or keys cached for it
            assign(fresh, RULES, LABELS, optimizers=opts).diagnostics

        def flags():
            param_infos(reassign())

        times = race([reassign, findings, findings_new_table, flags], repeats=args.repeat, warmup=2)
        base, with_findings, new_table, with_flags = (statistics.median(t) * 1e3 for t in times)
        only = with_findings - base
        print(f"{len(table):>10,}  {base:>14.1f}  {only:>9.1f}  {new_table - base:>9.1f}  "
              f"{with_flags - with_findings:>7.1f}  {only / base:>17.2f}", flush=True)
        size = f"{len(table):,} parameters"
        record("bench_findings", "findings of a new assignment", with_findings, base,
               with_findings / base, "assign (table)", size=size)


if __name__ == "__main__":
    main()
