"""Speed of the parameter tree and the rule editor on a 64-block transformer.

The model has about 5,000 parameter arrays (64 blocks of attention, norms, a
router and 16 small experts). Targets (issue 4): the tree's HTML with folding
in at most 200 ms and 2 MB; one edit in the rule editor, from the keystroke
handler to the new tree state, in at most 100 ms on the Python side.

Each line compares with what a user would otherwise run to see the same
thing: a pandas table of the assignment rendered to HTML, or, for an edit,
MLX's own routing (re-running the filters over the flattened parameters as
``mlx.optimizers.MultiOptimizer`` does). Medians of repeated runs after a
warm-up, all in one process.

Run: ``.venv/bin/python benchmarks/bench_render.py``
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

from multiopt_lab.partition.assignment import assign
from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
from multiopt_lab.render.document import render_html, render_text
from multiopt_lab.widgets.editor import RuleEditorWidget

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import header, record  # noqa: E402

BLOCKS, DIMS, EXPERTS = 64, 8, 16
RULE = 'ndim == 2 and not glob("*embed*")'
EDITS = ['ndim == 2 and not glob("*embed*") and not glob("*router*")', RULE]


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
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(256, DIMS)
        self.layers = [Block(DIMS) for _ in range(BLOCKS)]
        self.norm = nn.LayerNorm(DIMS)


def median_ms(fn, repeat: int = 15, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def mlx_routing(parameters, predicate):
    """What MLX does on every step: run the filter on every flattened parameter."""
    return [predicate(path, value) for path, value in tree_flatten(parameters)]


def main() -> None:
    model = Transformer()
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], [RULE])
    assignment = optimizer.assign(model)
    n = len(assignment.table)
    parameters = model.trainable_parameters()
    table = assignment.table

    def fresh():
        return assign(table, optimizer.filters, optimizer.labels)

    html = render_html(assignment, optimizer)
    unfolded = render_html(assignment, optimizer, fold=False)
    rows = [
        # A fresh Assignment every time: nothing cached from the previous render.
        ("tree HTML, folded (assign + render_html)", median_ms(lambda: render_html(fresh(), optimizer)), 200,
         len(html)),
        ("tree HTML, unfolded", median_ms(lambda: render_html(fresh(), optimizer, fold=False), repeat=5), None,
         len(unfolded)),
        ("tree text, folded (assign + render_text)", median_ms(lambda: render_text(fresh(), optimizer)), None,
         len(render_text(assignment, optimizer))),
        ("baseline: assignment.to_frame().to_html()", median_ms(lambda: assignment.to_frame().to_html(), repeat=5),
         None, len(assignment.to_frame().to_html())),
    ]

    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    field = editor.inputs["muon"]
    edits = iter(EDITS * 100)

    def edit():
        field.value = next(edits)  # runs the keystroke handler synchronously (no debounce)

    def predicate(path, value):
        return value.ndim == 2 and "embed" not in path

    rows += [
        ("editor: keystroke -> new tree state", median_ms(edit), 100, len(editor.tree.view.html)),
        ("baseline: MLX filters over all parameters", median_ms(lambda: mlx_routing(parameters, predicate)), None, None),
    ]

    header("bench_render")
    print(f"{n:,} parameter arrays, {BLOCKS} blocks")
    print(f"{'measure':44} {'median ms':>10} {'target ms':>10} {'size':>12}")
    for name, ms, target, size in rows:
        target_text = "" if target is None else f"<= {target}"
        size_text = "" if size is None else f"{size / 1e6:.3f} MB" if size > 1e5 else f"{size:,} B"
        print(f"{name:44} {ms:10.1f} {target_text:>10} {size_text:>12}")
    tree_ms, frame_ms = rows[0][1], rows[3][1]
    edit_ms, mlx_ms = rows[4][1], rows[5][1]
    size = f"{n:,} arrays"
    record("bench_render", rows[0][0], tree_ms, frame_ms, tree_ms / frame_ms, rows[3][0], size=size)
    record("bench_render", rows[4][0], edit_ms, mlx_ms, edit_ms / mlx_ms, rows[5][0], size=size)
    print(f"ratio tree HTML / pandas to_html: {tree_ms / frame_ms:.2f}x")
    print(f"ratio editor edit / MLX filter pass: {edit_ms / mlx_ms:.2f}x")
    print(f"folded HTML within 2 MB: {len(html) <= 2_000_000}")


if __name__ == "__main__":
    main()
