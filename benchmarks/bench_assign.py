# Imports the private module multiopt_lab._src.rules.cache (benchmarks measure internals).
"""How long routing a 10,000-parameter tree takes: multiopt_lab.assign vs MLX.

Run: ``.venv/bin/python benchmarks/bench_assign.py [--parameters 10000] [--repeat 15]``

Prints medians (ms) side by side, measured in one process after a warm-up:

* ``mlx _split_dictionary``: what ``mlx.optimizers.MultiOptimizer`` does on
  every step, with Python callables equivalent to the rules.
* ``assign (tree, cold)``: ``assign(tree, rules)`` with an empty selection
  cache: flatten the tree, evaluate 5 rules, build the assignment.
* ``assign (table, cold)``: the same from an already-flattened
  ``ParameterTable`` (what the rule editor holds).
* ``re-assign, 1 rule changed``: after one rule's text changed, from the
  table; the other four selections come from the cache.
* ``re-assign, tree, 1 rule changed``: the same, flattening the tree again.
* ``module rules``: the same 10,000 parameters as an ``nn.Module`` and five
  rules reading ``module``, ``modules`` and ``within``: MLX's split with
  callables that look the class up in a precomputed path -> class dict,
  ``ParameterTable.from_tree(model)`` (MLX's ``trainable_parameters()``
  plus the walk for the module classes), and ``assign`` from that table.

Targets (issues 2 and 15): cold assign <= 25 ms, with module rules too;
re-assign after one change <= 10 ms.
"""

from __future__ import annotations

import argparse
import os
import sys
import fnmatch
import re
import statistics
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from multiopt_lab import ParameterTable, assign
from multiopt_lab._src.rules.cache import clear_selection_cache

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import header, record  # noqa: E402

RULES = [
    'ndim == 2 and not glob("*embed*") and "lm_head" not in path',
    r'regex(r"\.norm\d*\.") or name == "bias"',
    'glob("*.attn.*") and ndim == 1',
    "ndim >= 3 and shape[-1] > 4",
    'dtype == "bfloat16" or size > 1000000',
]
CHANGED = 'glob("*.attn.*") and ndim <= 1'
MODULE_RULES = [
    'within("Layer") and module == "Linear" and ndim == 2',
    'module in ("LayerNorm", "RMSNorm") or name == "bias"',
    'module == "Conv2d"',
    'modules[-2] == "Attention" and ndim == 1',
    'module == "Embedding"',
]

_NORM = re.compile(r"\.norm\d*\.")


def equivalent_callables():
    """The same five rules written as plain Python filters."""
    return [
        lambda p, a: a.ndim == 2 and not fnmatch.fnmatchcase(p, "*embed*") and "lm_head" not in p,
        lambda p, a: _NORM.search(p) is not None or p.rpartition(".")[2] == "bias",
        lambda p, a: fnmatch.fnmatchcase(p, "*.attn.*") and a.ndim == 1,
        lambda p, a: a.ndim >= 3 and a.shape[-1] > 4,
        lambda p, a: str(a.dtype).endswith("bfloat16") or a.size > 1000000,
    ]


def make_tree(n_parameters: int) -> dict:
    """A transformer-like tree of about ``n_parameters`` small arrays."""
    per_layer = [
        ("attn.q.weight", (8, 8)), ("attn.k.weight", (8, 8)), ("attn.v.weight", (8, 8)),
        ("attn.o.weight", (8, 8)), ("attn.o.bias", (8,)), ("norm1.weight", (8,)),
        ("norm1.bias", (8,)), ("mlp.fc1.weight", (16, 8)), ("mlp.fc1.bias", (16,)),
        ("mlp.fc2.weight", (8, 16)), ("conv.weight", (8, 3, 3, 8)), ("norm2.weight", (8,)),
    ]
    zeros = {shape: mx.zeros(shape) for _, shape in per_layer}
    layers = []
    for _ in range(max(1, (n_parameters - 2) // len(per_layer))):
        layer: dict = {}
        for path, shape in per_layer:
            node = layer
            *parents, leaf = path.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = zeros[shape]
        layers.append(layer)
    return {"embed": {"weight": mx.zeros((100, 8))}, "layers": layers,
            "lm_head": {"weight": mx.zeros((100, 8))}}


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(8, 8, bias=False) for _ in range(3))
        self.o = nn.Linear(8, 8)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 8, bias=False)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn, self.norm1, self.mlp = Attention(), nn.LayerNorm(8), MLP()
        self.conv, self.norm2 = nn.Conv2d(8, 8, 3, bias=False), nn.RMSNorm(8)


class Model(nn.Module):
    """``make_tree``'s parameters (12 per layer) as modules, for rules reading ``module``."""

    def __init__(self, n_parameters: int):
        super().__init__()
        self.embed = nn.Embedding(100, 8)
        self.layers = [Layer() for _ in range(max(1, (n_parameters - 2) // 12))]
        self.lm_head = nn.Linear(8, 100, bias=False)


def module_callables(kinds: dict[str, tuple[str, ...]]):
    """The five module rules as plain filters reading a precomputed path -> classes dict."""
    return [
        lambda p, a: "Layer" in kinds[p] and kinds[p][-1] == "Linear" and a.ndim == 2,
        lambda p, a: kinds[p][-1] in ("LayerNorm", "RMSNorm") or p.rpartition(".")[2] == "bias",
        lambda p, a: kinds[p][-1] == "Conv2d",
        lambda p, a: kinds[p][-2] == "Attention" and a.ndim == 1,
        lambda p, a: kinds[p][-1] == "Embedding",
    ]


def median_ms(fn, repeat: int, before=None) -> float:
    times = []
    for _ in range(repeat + 2):  # two warm-up runs
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parameters", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    tree = make_tree(args.parameters)
    table = ParameterTable.from_tree(tree)
    labels = ["muon", "nodecay", "attn_bias", "conv", "half", "adamw"]
    mlx_opt = optim.MultiOptimizer([optim.SGD(0.1) for _ in labels], equivalent_callables())

    # Same routing, or the comparison means nothing.
    reference = dict(zip(labels, (p for p in mlx_opt._split_dictionary(tree))))
    ours = assign(table, RULES, labels)
    from mlx.utils import tree_flatten
    for label, part in reference.items():
        assert tuple(p for p, _ in tree_flatten(part)) == ours.paths_of(label), label

    changed = RULES[:2] + [CHANGED] + RULES[3:]
    flip = [0]

    def reassign_table():
        flip[0] ^= 1  # alternate between two texts so the changed rule always misses the cache
        assign(table, changed if flip[0] else RULES, labels)

    def reassign_tree():
        flip[0] ^= 1
        assign(tree, changed if flip[0] else RULES, labels)

    def forget_changed_rule():
        # Keep the 4 unchanged rules cached, drop only the changed ones.
        from multiopt_lab._src.rules import cache as rule_cache
        for key in [k for k in rule_cache._selections if "ndim" in str(k[0]) and "attn" in str(k[0])]:
            del rule_cache._selections[key]

    rows = [
        ("mlx _split_dictionary (every step)", median_ms(lambda: mlx_opt._split_dictionary(tree), args.repeat)),
        ("flatten tree -> ParameterTable", median_ms(lambda: ParameterTable.from_tree(tree), args.repeat)),
        ("assign (tree, cold cache)", median_ms(lambda: assign(tree, RULES, labels), args.repeat, clear_selection_cache)),
        ("assign (table, cold cache)", median_ms(lambda: assign(table, RULES, labels), args.repeat, clear_selection_cache)),
        ("re-assign (table), 1 rule changed", median_ms(reassign_table, args.repeat, forget_changed_rule)),
        ("re-assign (tree), 1 rule changed", median_ms(reassign_tree, args.repeat, forget_changed_rule)),
        ("assign (table), nothing changed", median_ms(lambda: assign(table, RULES, labels), args.repeat)),
    ]

    model = Model(args.parameters)
    module_table = ParameterTable.from_tree(model)
    kinds = dict(zip(module_table.paths, module_table.module_chains))
    mlx_modules = optim.MultiOptimizer([optim.SGD(0.1) for _ in labels], module_callables(kinds))
    trainable = model.trainable_parameters()
    reference = dict(zip(labels, mlx_modules._split_dictionary(trainable)))
    ours = assign(module_table, MODULE_RULES, labels)
    for label, part in reference.items():
        assert tuple(p for p, _ in tree_flatten(part)) == ours.paths_of(label), label
    rows += [
        ("module rules: mlx _split_dictionary", median_ms(lambda: mlx_modules._split_dictionary(trainable), args.repeat)),
        ("module rules: model.trainable_parameters()", median_ms(model.trainable_parameters, args.repeat)),
        ("module rules: ParameterTable.from_tree(model)", median_ms(lambda: ParameterTable.from_tree(model), args.repeat)),
        ("module rules: assign (table, cold cache)", median_ms(lambda: assign(module_table, MODULE_RULES, labels), args.repeat, clear_selection_cache)),
        ("module rules: assign (model, cold cache)", median_ms(lambda: assign(model, MODULE_RULES, labels), args.repeat, clear_selection_cache)),
    ]
    base = rows[0][1]
    header("bench_assign")
    print(f"{len(table)} parameters, {len(RULES)} rules, median of {args.repeat} runs after 2 warm-ups")
    print(f"{'what':<46} {'ms':>8} {'vs mlx':>8}")
    reference_name = "mlx _split_dictionary (every step)"
    for name, ms in rows:
        if name.startswith("module rules: mlx"):  # the module rows compare with this one
            base, reference_name = ms, "module rules: mlx _split_dictionary"
        print(f"{name:<46} {ms:8.2f} {base / ms:7.1f}x")
        record("bench_assign", name, ms, base, ms / base, reference_name,
               size=f"{len(table):,} parameters")


if __name__ == "__main__":
    main()
