# Imports the private module multiopt_lab._src.live.rule_draft (benchmarks measure internals).
"""Speed of the rule editor's keystroke and of the tree's HTML, at 1k, 10k and 50k parameter arrays.

The models are transformers of 78 parameter arrays per block (attention,
norms, a router and 16 small experts), as many blocks as the size asks for.
Targets (issue 24): one keystroke in the rule editor, from the handler to
the new tree state (parse, assign, diagnostics, tree HTML, preview), in at
most 100 ms at 10,000 arrays and 500 ms at 50,000; the folded tree's HTML in
at most 2 MB.

Every keystroke types a rule text not seen before (the rule is evaluated
afresh, as when typing), alternating between two rules that move the
routers. The parts of the chain are timed on their own, each on a fresh
assignment: ``evaluate_draft`` (parse, assign, the moves), the diagnostics,
and ``render_html`` (legend and tree). The baseline is what MLX itself
does with a rule on every step: run the filter on every flattened parameter.
Runs are interleaved (warm-up, then repetitions), medians reported.

Run: ``.venv/bin/python benchmarks/bench_render.py [--sizes 1000,10000,50000] [--repeat 7]``
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys

import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

from multiopt_lab import MultiOptimizer, RuleEditorWidget, assign, render_html
from multiopt_lab._src.live.rule_draft import evaluate_draft

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import header, race, record  # noqa: E402

DIMS, EXPERTS = 8, 16
PER_BLOCK = 2 + 4 * 2 + 2 + 2 + EXPERTS * 4  # norm1, q k v o, norm2, router, experts
RULE = 'ndim == 2 and not glob("*embed*")'
TARGETS = {10_000: 100, 50_000: 500}


class Expert(nn.Module):
    def __init__(self, dims: int):
        super().__init__()
        self.up = nn.Linear(dims, 2 * dims)
        self.down = nn.Linear(2 * dims, dims)


class Block(nn.Module):
    def __init__(self, dims: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dims)
        self.q, self.k, self.v, self.o = (nn.Linear(dims, dims) for _ in range(4))
        self.norm2 = nn.LayerNorm(dims)
        self.router = nn.Linear(dims, EXPERTS)
        self.experts = [Expert(dims) for _ in range(EXPERTS)]


class Transformer(nn.Module):
    def __init__(self, blocks: int):
        super().__init__()
        self.embed = nn.Embedding(256, DIMS)
        self.layers = [Block(DIMS) for _ in range(blocks)]
        self.norm = nn.LayerNorm(DIMS)


def typed_rules():
    """Rule texts never typed before, alternating between two routings (the routers move)."""
    for i in itertools.count():
        extra = ' and not glob("*router*")' if i % 2 else ""
        yield f"{RULE}{extra} and size > -{i}"


def mlx_routing(parameters, predicate):
    """What MLX does on every step: run the filter on every flattened parameter."""
    return [predicate(path, value) for path, value in tree_flatten(parameters)]


def predicate(path, value):
    return value.ndim == 2 and "embed" not in path


def measure(size: int, repeat: int) -> tuple[list[tuple[str, float, float | None, int | None]], int]:
    """``(what, median ms, target ms, bytes)`` rows for a model of about ``size`` arrays, and
    its exact number of arrays."""
    model = Transformer(max(1, round((size - 4) / PER_BLOCK)))
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], [RULE], labels=["muon", "adamw"])
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    field = editor.inputs["muon"]
    table, current = editor.table, editor.current
    parameters = model.trainable_parameters()
    texts = typed_rules()

    def keystroke():
        field.value = next(texts)  # runs the keystroke handler at once (no debounce)

    def draft():
        evaluate_draft([next(texts)], optimizer, table, current)

    def diagnostics():
        assign(table, [next(texts)], ["muon", "adamw"]).diagnostics

    def tree_html():
        render_html(assign(table, [next(texts)], ["muon", "adamw"]), optimizer)

    def assign_only():
        assign(table, [next(texts)], ["muon", "adamw"])

    runs = [keystroke, draft, assign_only, diagnostics, tree_html, lambda: mlx_routing(parameters, predicate)]
    times = race(runs, repeats=repeat, warmup=2)
    ms = [1000 * statistics.median(t) for t in times]
    # Every part assigns first: what a part adds is its row minus "assign alone".
    html = editor.tree.view.html
    folded = render_html(assign(table, [RULE], ["muon", "adamw"]), optimizer)
    editor.close()
    return [
        ("editor: keystroke -> new tree state", ms[0], TARGETS.get(size), len(html)),
        ("  evaluate_draft (parse, assign, moves)", ms[1], None, None),
        ("  assign alone", ms[2], None, None),
        ("  assign + diagnostics", ms[3], None, None),
        ("  assign + render_html (legend, tree)", ms[4], None, len(folded)),
        ("baseline: MLX filters over all parameters", ms[5], None, None),
    ], len(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000",
                        help="comma-separated numbers of parameter arrays (default: 1000,10000,50000)")
    parser.add_argument("--repeat", type=int, default=7, help="timed repetitions of each run (default: 7)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    header("bench_render")
    print(f"median of {args.repeat} interleaved runs after 2 warm-ups; every keystroke types a new rule")
    print(f"{'arrays':>7}  {'measure':44} {'median ms':>10} {'target ms':>10} {'vs MLX':>8} {'size':>10}")
    for size in sizes:
        rows, n = measure(size, args.repeat)
        mlx_ms = rows[-1][1]
        for name, ms, target, length in rows:
            target_text = "" if target is None else f"<= {target}"
            size_text = "" if length is None else f"{length / 1e3:,.0f} KB"
            print(f"{n:7,}  {name:44} {ms:10.1f} {target_text:>10} {ms / mlx_ms:7.2f}x {size_text:>10}",
                  flush=True)
        for name, ms, _, _ in rows[:-1]:
            record("bench_render", name.strip(), ms, mlx_ms, ms / mlx_ms, rows[-1][0],
                   size=f"{n:,} arrays")
        keystroke_ms, target = rows[0][1], rows[0][2]
        if target is not None:
            print(f"{n:7,}  keystroke within {target} ms: {keystroke_ms <= target}")
        print(f"{n:7,}  folded HTML within 2 MB: {rows[4][3] <= 2_000_000}")


if __name__ == "__main__":
    main()
