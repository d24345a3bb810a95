# Imports the private modules multiopt_lab._src.io.rulefile_data, multiopt_lab._src.partition.labels
#   (benchmarks measure internals).
"""How long reading a rule file takes as its groups grow: linear, up to 100,000 groups.

Run: ``.venv/bin/python benchmarks/bench_rulefile.py [--groups 1000 10000 20000 100000] [--repeat 3]``

Each file holds ``--groups`` groups, one per-layer rule each
(``glob('*.layers.<i>.*')``) and an optimizer table (SGD), as
``save_optimizer`` writes them. Medians of this process's CPU time (the
machine is shared: elapsed time measures the neighbours; ``--clock wall``
for elapsed time), side by side in one process:

* ``load_rules`` of the TOML and of the JSON file, and ``load_optimizer`` of
  the JSON file (it also builds every group's optimizer and initialises them
  for a small model);
* the same ``load_rules`` with the label check of 61d2966 patched back in
  (``labels.count`` per label: quadratic), up to ``--base-limit`` groups
  (issue 26 measured 27 s at 20,000 groups);
* the cost per group against the cost per group of the smallest file:
  a ratio near 1 is linear time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mlx.nn as nn

import multiopt_lab._src.io.rulefile_data as rulefile_data
from multiopt_lab import load_optimizer, load_rules
from multiopt_lab._src.partition.labels import TOTAL_LABEL

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import header, record  # noqa: E402


def check_labels_61d2966(labels, n_filters):
    """The label check of 61d2966, verbatim but for its messages: ``labels.count`` per label."""
    labels = tuple(labels)
    if len(labels) != n_filters + 1:
        raise ValueError("wrong count")
    for label in labels:
        if not isinstance(label, str) or not label or label == TOTAL_LABEL:
            raise ValueError("bad label")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError("repeated")
    return labels


def write_files(folder: Path, groups: int) -> tuple[Path, Path]:
    """A TOML and a JSON rule file of ``groups`` groups, each with a rule and an optimizer."""
    data = {"version": 1, "group": [
        {"label": f"layer_{i}", "rule": f"glob('*.layers.{i}.*')",
         "optimizer": {"class": "SGD", "learning_rate": 0.01, "momentum": 0.9}}
        for i in range(groups - 1)]}
    data["group"].append({"label": "rest", "optimizer": {"class": "AdamW", "learning_rate": 1e-3}})
    json_path = folder / f"rules_{groups}.json"
    json_path.write_text(json.dumps(data, indent=2))
    blocks = ["version = 1\n"]
    for group in data["group"]:
        block = f'[[group]]\nlabel = "{group["label"]}"\n'
        if "rule" in group:
            block += f"rule = \"{group['rule']}\"\n"
        table = group["optimizer"]
        block += "\n[group.optimizer]\n" + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in table.items())
        blocks.append(block)
    toml_path = folder / f"rules_{groups}.toml"
    toml_path.write_text("\n".join(blocks))
    return toml_path, json_path


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def seconds(fn, repeat: int, clock=time.process_time) -> float:
    """The median of ``repeat`` runs, each with Python's regex cache emptied first (off the
    clock): a file is read once, and ``glob()`` patterns left cached by the last run (up to
    512 of them) would make a small file read in a fraction of its time."""
    times = []
    for _ in range(repeat):
        re.purge()
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[1_000, 10_000, 20_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--base-limit", type=int, default=20_000,
                        help="largest file also read with 61d2966's quadratic label check")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: this process's CPU time (steady on a shared machine; reading "
                             "is single-threaded Python); wall: elapsed time")
    args = parser.parse_args()
    clock = CLOCKS[args.clock]

    header("bench_rulefile")
    model = nn.Linear(8, 8)
    folder = Path(tempfile.mkdtemp(prefix="bench_rulefile-"))
    warm_toml, warm_json = write_files(folder, 100)
    load_rules(warm_toml), load_rules(warm_json), load_optimizer(warm_json, model)  # warm-up
    print(f"{args.clock} seconds, median of {args.repeat}; 61d2966 = the same load with its label "
          "check (labels.count)")
    print(f"{'groups':>8} {'TOML s':>8} {'JSON s':>8} {'load_optimizer s':>17} {'us/group':>9} "
          f"{'vs smallest':>11} {'61d2966 s':>10} {'ours/61d2966':>12}")
    per_group_first = None
    for groups in sorted(args.groups):
        toml_path, json_path = write_files(folder, groups)
        toml_s = seconds(lambda: load_rules(toml_path), args.repeat, clock)
        json_s = seconds(lambda: load_rules(json_path), args.repeat, clock)
        optimizer_s = seconds(lambda: load_optimizer(json_path, model), args.repeat, clock)
        base_s = None
        if groups <= args.base_limit:
            current = rulefile_data.check_labels
            rulefile_data.check_labels = check_labels_61d2966
            try:
                base_s = seconds(lambda: load_rules(toml_path), args.repeat, clock)
            finally:
                rulefile_data.check_labels = current
        per_group = toml_s / groups * 1e6
        per_group_first = per_group_first or per_group
        size = f"{groups:,} groups"
        shown_base = "" if base_s is None else f"{base_s:10.2f}"
        shown_ratio = "" if base_s is None else f"{toml_s / base_s:12.3f}"
        print(f"{groups:>8,} {toml_s:8.2f} {json_s:8.2f} {optimizer_s:17.2f} {per_group:9.0f} "
              f"{per_group / per_group_first:11.2f} {shown_base:>10} {shown_ratio:>12}", flush=True)
        record("bench_rulefile", f"load_rules .toml ({args.clock} s)", toml_s, base_s,
               None if base_s is None else toml_s / base_s,
               "the same load with 61d2966's label check (None: not run past --base-limit)",
               unit="s", size=size)
        record("bench_rulefile", "load_rules .toml, cost per group", per_group, per_group_first,
               per_group / per_group_first, f"per group at {min(args.groups):,} groups (1 = linear)",
               unit="us", size=size)
        record("bench_rulefile", f"load_rules .json ({args.clock} s)", json_s, None, None, "",
               unit="s", size=size)
        record("bench_rulefile", f"load_optimizer .json ({args.clock} s)", optimizer_s, None, None,
               "", unit="s", size=size)
        toml_path.unlink()
        json_path.unlink()


if __name__ == "__main__":
    main()
