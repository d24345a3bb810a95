"""Exact text of the parameter tree and legend, and the tree model's folding rules."""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim
import pytest

from multiopt_lab.partition.assignment import assign
from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
from multiopt_lab.examples.models import MLP, SmallCNN, TinyGPT
from multiopt_lab.render.document import render_text
from multiopt_lab.optimizer.describe import describe_optimizer, optimizers_of
from multiopt_lab.render.numbers import human_count, percent, share_text
from multiopt_lab.render.tree_model import FoldNode, ModuleNode, ParamNode, build_tree

MATRICES = 'ndim == 2 and not glob("*embed*") and not glob("position*")'

GPT = """\
group  optimizer                                                          rule                                                         params  elements  share  notes
muon   Muon(lr=0.02, momentum=0.95, weight_decay=0.01)                    ndim == 2 and not glob("*embed*") and not glob("position*")      18     2,304    84%
adamw  AdamW(lr=0.001, betas=(0.9, 0.999), weight_decay=0.01, eps=1e-08)  (fallback)                                                       22       424    16%  ! 22 fallback only
! caught by no rule, only by the fallback 'adamw' (22): embed.weight, position.weight, layers.0.norm1.weight and 19 more

TinyGPT                         40 params           2,728  muon 84% | adamw 16%                                                ! 22 flagged below
├── embed                       1 param               128  adamw                                                               ! 1 flagged below
│   └── weight                  [16, 8]    float32    128  adamw  (fallback)                                                   ! fallback only
├── position                    1 param                64  adamw                                                               ! 1 flagged below
│   └── weight                  [8, 8]     float32     64  adamw  (fallback)                                                   ! fallback only
├── layers                      36 params           2,520  muon 91% | adamw 9%                                                 ! 18 flagged below
│   └── [0..2]                  36 params           2,520  muon 91% | adamw 9%                                                 folded: 3 identical blocks, one shown; ! 18 flagged below
│       ├── norm1               2 params               16  adamw                                                               ! 2 flagged below
│       │   ├── weight          [8]        float32      8  adamw  (fallback)                                                   ! fallback only
│       │   └── bias            [8]        float32      8  adamw  (fallback)                                                   ! fallback only
│       ├── attn                4 params              256  muon
│       │   ├── q               1 param                64  muon
│       │   │   └── weight      [8, 8]     float32     64  muon   ndim == 2 and not glob("*embed*") and not glob("position*")
│       │   ├── k               1 param                64  muon
│       │   │   └── weight      [8, 8]     float32     64  muon   ndim == 2 and not glob("*embed*") and not glob("position*")
│       │   ├── v               1 param                64  muon
│       │   │   └── weight      [8, 8]     float32     64  muon   ndim == 2 and not glob("*embed*") and not glob("position*")
│       │   └── o               1 param                64  muon
│       │       └── weight      [8, 8]     float32     64  muon   ndim == 2 and not glob("*embed*") and not glob("position*")
│       ├── norm2               2 params               16  adamw                                                               ! 2 flagged below
│       │   ├── weight          [8]        float32      8  adamw  (fallback)                                                   ! fallback only
│       │   └── bias            [8]        float32      8  adamw  (fallback)                                                   ! fallback only
│       └── mlp                 4 params              552  muon 93% | adamw 7%                                                 ! 2 flagged below
│           └── layers          4 params              552  muon 93% | adamw 7%                                                 ! 2 flagged below
│               ├── 0           2 params              288  muon 89% | adamw 11%                                                ! 1 flagged below
│               │   ├── weight  [32, 8]    float32    256  muon   ndim == 2 and not glob("*embed*") and not glob("position*")
│               │   └── bias    [32]       float32     32  adamw  (fallback)                                                   ! fallback only
│               └── 2           2 params              264  muon 97% | adamw 3%                                                 ! 1 flagged below
│                   ├── weight  [8, 32]    float32    256  muon   ndim == 2 and not glob("*embed*") and not glob("position*")
│                   └── bias    [8]        float32      8  adamw  (fallback)                                                   ! fallback only
└── norm                        2 params               16  adamw                                                               ! 2 flagged below
    ├── weight                  [8]        float32      8  adamw  (fallback)                                                   ! fallback only
    └── bias                    [8]        float32      8  adamw  (fallback)                                                   ! fallback only
"""

CNN = """\
group  optimizer                                      rule        params  elements  share  notes
conv   SGD(lr=0.1, momentum=0.9)                      ndim == 4        2     1,224    64%
rest   Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08)  (fallback)       4       674    36%  ! 4 fallback only
! caught by no rule, only by the fallback 'rest' (4): conv1.bias, conv2.bias, head.weight and 1 more

SmallCNN        6 params                1,898  conv 64% | rest 36%  ! 4 flagged below
├── conv1       2 params                   80  conv 90% | rest 10%  ! 1 flagged below
│   ├── weight  [8, 3, 3, 1]   float32     72  conv  ndim == 4
│   └── bias    [8]            float32      8  rest  (fallback)     ! fallback only
├── conv2       2 params                1,168  conv 99% | rest 1%   ! 1 flagged below
│   ├── weight  [16, 3, 3, 8]  float32  1,152  conv  ndim == 4
│   └── bias    [16]           float32     16  rest  (fallback)     ! fallback only
└── head        2 params                  650  rest                 ! 2 flagged below
    ├── weight  [10, 64]       float32    640  rest  (fallback)     ! fallback only
    └── bias    [10]           float32     10  rest  (fallback)     ! fallback only
"""

MISTAKES = """\
group  optimizer                                                          rule                          params  elements  share  notes
muon   Muon(lr=0.02, momentum=0.95, weight_decay=0.01)                    ndim == 2                          3       160    75%  ! 3 also matched by later rules
sgd    SGD(lr=0.1)                                                        glob("*.weight")                   2        16     8%
conv   SGD(lr=0.1, momentum=0.9)                                          ndim == 4                          0         0     0%  ! dead rule: matches nothing
adam   Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08)                      glob("head.*") and ndim == 2       0         0     0%  ! shadowed rule: earlier rules took all it matches
adamw  AdamW(lr=0.001, betas=(0.9, 0.999), weight_decay=0.01, eps=1e-08)  (fallback)                         5        36    17%  ! 5 fallback only
! caught by no rule, only by the fallback 'adamw' (5): layers.0.bias, layers.1.bias, norms.0.bias and 2 more
! matched by several rules, the first wins (3): layers.0.weight (muon > sgd), layers.1.weight (muon > sgd), head.weight (muon > sgd > adam)
! dead rule 'conv': matches no parameter
! shadowed rule 'adam': every parameter it matches was taken by an earlier rule

MLP                 10 params           212  muon 75% | sgd 8% | adamw 17%  ! 8 flagged below
├── layers          4 params            144  muon 89% | adamw 11%           ! 4 flagged below
│   └── [0..1]      4 params            144  muon 89% | adamw 11%           folded: 2 identical blocks, one shown; ! 4 flagged below
│       ├── weight  [8, 8]     float32   64  muon   ndim == 2               ! overlap: also sgd
│       └── bias    [8]        float32    8  adamw  (fallback)              ! fallback only
├── norms           4 params             32  sgd 50% | adamw 50%            ! 2 flagged below
│   └── [0..1]      4 params             32  sgd 50% | adamw 50%            folded: 2 identical blocks, one shown; ! 2 flagged below
│       ├── weight  [8]        float32    8  sgd    glob("*.weight")
│       └── bias    [8]        float32    8  adamw  (fallback)              ! fallback only
└── head            2 params             36  muon 89% | adamw 11%           ! 2 flagged below
    ├── weight      [4, 8]     float32   32  muon   ndim == 2               ! overlap: also sgd, adam
    └── bias        [4]        float32    4  adamw  (fallback)              ! fallback only
"""


def gpt_optimizer():
    return MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], [MATRICES])


def mistakes_optimizer():
    optimizers = [optim.Muon(0.02), optim.SGD(0.1), optim.SGD(0.1, momentum=0.9), optim.Adam(1e-3), optim.AdamW(1e-3)]
    rules = ["ndim == 2", 'glob("*.weight")', "ndim == 4", 'glob("head.*") and ndim == 2']
    return MultiOptimizer(optimizers, rules, labels=["muon", "sgd", "conv", "adam", "adamw"])


class TestExactText:
    def test_transformer_with_tied_embeddings(self):
        model = TinyGPT(16, dims=8, layers=3, heads=2, max_length=8)
        optimizer = gpt_optimizer()
        assert render_text(optimizer.assign(model), optimizer, root_name="TinyGPT") == GPT.rstrip("\n")

    def test_cnn(self):
        optimizer = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(1e-3)], ["ndim == 4"], labels=["conv", "rest"])
        assert render_text(optimizer.assign(SmallCNN()), optimizer, root_name="SmallCNN") == CNN.rstrip("\n")

    def test_model_with_deliberate_mistakes(self):
        optimizer = mistakes_optimizer()
        text = render_text(optimizer.assign(MLP(8, [8, 8], 4, norm=True)), optimizer, root_name="MLP")
        assert text == MISTAKES.rstrip("\n")

    def test_without_optimizers_the_legend_has_no_optimizer_column(self):
        text = render_text(assign(SmallCNN(), ["ndim == 4"], ["conv", "rest"]))
        assert text.splitlines()[0] == "group  rule        params  elements  share  notes"

    def test_no_trailing_spaces_and_stable(self):
        optimizer = mistakes_optimizer()
        assignment = optimizer.assign(MLP(8, [8, 8], 4, norm=True))
        first = render_text(assignment, optimizer)
        assert first == render_text(assignment, optimizer)
        assert all(line == line.rstrip() for line in first.splitlines())


def block_names(tree):
    layers = next(c for c in tree.root.children if c.name == "layers")
    return [c.name for c in layers.children]


class TestFolding:
    def test_identical_blocks_fold_into_one_row(self):
        tree = build_tree(gpt_optimizer().assign(TinyGPT(16, dims=8, layers=4, heads=2)))
        layers = next(c for c in tree.root.children if c.name == "layers")
        (fold,) = layers.children
        assert isinstance(fold, FoldNode)
        assert (fold.name, fold.count, fold.path) == ("[0..3]", 4, "layers.0")
        assert fold.totals.params == 4 * fold.block.totals.params == layers.totals.params

    def test_a_block_assigned_differently_is_never_folded_with_its_siblings(self):
        rule = MATRICES + ' and not glob("layers.1.*")'
        tree = build_tree(assign(TinyGPT(16, dims=8, layers=5, heads=2), [rule], ["muon", "adamw"]))
        assert block_names(tree) == ["0", "1", "[2..4]"]

    def test_a_block_with_a_different_structure_is_not_folded(self):
        params = {"layers": [{"w": mx.zeros((2, 2))}, {"w": mx.zeros((2, 2))}, {"w": mx.zeros((3, 2))}]}
        tree = build_tree(assign(params, ["ndim == 2"]))
        assert block_names(tree) == ["[0..1]", "2"]

    def test_unfold_on_request_and_fold_off(self):
        assignment = gpt_optimizer().assign(TinyGPT(16, dims=8, layers=3, heads=2))
        assert block_names(build_tree(assignment, unfold={"layers"})) == ["0", "1", "2"]
        assert block_names(build_tree(assignment, fold=False)) == ["0", "1", "2"]
        text = render_text(assignment, unfold={"layers"}, legend=False)
        assert "│   ├── 1 " in text and "folded" not in text

    def test_search_matches_split_folds(self):
        assignment = gpt_optimizer().assign(TinyGPT(16, dims=8, layers=4, heads=2))
        tree = build_tree(assignment, highlight={"layers.2.attn.q.weight"})
        assert block_names(tree) == ["[0..1]", "2", "3"]
        assert tree.root.totals.matches == 1
        assert "<- match" in render_text(assignment, highlight={"layers.2.attn.q.weight"}, legend=False)

    def test_non_consecutive_names_are_listed(self):
        params = {"experts": {"1": {"w": mx.zeros((2,))}, "3": {"w": mx.zeros((2,))}}}
        tree = build_tree(assign(params, []))
        (experts,) = tree.root.children
        assert [c.name for c in experts.children] == ["[1, 3]"]

    def test_nesting_follows_module_paths(self):
        tree = build_tree(assign({"a": {"b": {"c": mx.zeros((1,))}}, "d": mx.zeros((2,))}, []))
        a, d = tree.root.children
        assert isinstance(a, ModuleNode) and isinstance(d, ParamNode)
        assert a.children[0].children[0].path == "a.b.c"

    def test_empty_model(self):
        tree = build_tree(assign({}, []))
        assert tree.root.totals.params == 0
        assert render_text(assign({}, []), legend=False) == "model  0 params    0"


class TestHelpers:
    @pytest.mark.parametrize("part, whole, expected", [(0, 10, "0%"), (10, 10, "100%"), (1, 1000, "<1%"),
                                                        (999, 1000, ">99%"), (82, 100, "82%"), (5, 0, "0%")])
    def test_percent_never_rounds_a_share_away(self, part, whole, expected):
        assert percent(part, whole) == expected

    def test_human_count(self):
        assert [human_count(n) for n in (950, 12_345, 1_300_000, 7_200_000_000)] == ["950", "12.3 k", "1.3 M", "7.2 G"]

    def test_share_text(self):
        assert share_text([0, 5], ["a", "b"]) == "b"
        assert share_text([1, 3], ["a", "b"]) == "a 25% | b 75%"

    def test_hyperparameters_of_a_scheduled_learning_rate(self):
        text = describe_optimizer(optim.AdamW(learning_rate=optim.cosine_decay(1e-3, 100)))
        assert text == "AdamW(lr=schedule(0.001), betas=(0.9, 0.999), weight_decay=0.01, eps=1e-08)"

    def test_optimizer_count_must_match_groups(self):
        with pytest.raises(ValueError, match="Expected one optimizer per group \\(3\\), found 2"):
            optimizers_of([optim.SGD(0.1), optim.SGD(0.1)], 3)
