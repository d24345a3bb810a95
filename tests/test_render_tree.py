# Tests the private modules' own units: multiopt_lab._src.optimizer.describe,
#   multiopt_lab._src.render.numbers, multiopt_lab._src.render.tree_model.
"""Exact text of the parameter tree and legend, and the tree model's folding rules."""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim
import pytest

from multiopt_lab import MultiOptimizer, assign, render_text
from multiopt_lab._src.optimizer.describe import describe_optimizer, optimizers_of
from multiopt_lab._src.render.numbers import human_count, percent, share_text
from multiopt_lab._src.render.tree_model import FoldNode, ModuleNode, ParamNode, build_tree
from multiopt_lab.examples import MLP, SmallCNN, TinyGPT, TinyMoE

MATRICES = 'ndim == 2 and not glob("*embed*") and not glob("position*")'

GPT = """\
group  optimizer                                                          rule                                                         params  elements  share  notes
muon   Muon(lr=0.02, momentum=0.95, weight_decay=0.01)                    ndim == 2 and not glob("*embed*") and not glob("position*")      18     2,304    84%
adamw  AdamW(lr=0.001, betas=(0.9, 0.999), weight_decay=0.01, eps=1e-08)  (fallback)                                                       22       424    16%  weight decay 0.01 (22)
note: AdamW (group 'adamw', weight_decay=0.01) decays 22 parameters that are norm scales, biases or embeddings; decay regularises weight matrices, but pulls a scale or a bias towards zero and shrinks the embeddings of rare tokens: embed.weight, position.weight, layers.*.norm1.weight (in 3 blocks) and 7 more; fix: give them a group with weight_decay=0 (multiopt_lab.recipes.no_weight_decay builds one), or keep it if you mean it

TinyGPT                         40 params           2,728  muon 84% | adamw 16%
├── embed                       1 param               128  adamw
│   └── weight                  [16, 8]    float32    128  adamw  (fallback)
├── position                    1 param                64  adamw
│   └── weight                  [8, 8]     float32     64  adamw  (fallback)
├── layers                      36 params           2,520  muon 91% | adamw 9%
│   └── [0..2]                  36 params           2,520  muon 91% | adamw 9%                                                 3 identical, one shown
│       ├── norm1               2 params               16  adamw
│       │   ├── weight          [8]        float32      8  adamw  (fallback)
│       │   └── bias            [8]        float32      8  adamw  (fallback)
│       ├── attn                4 params              256  muon
│       │   ├── q               1 param                64  muon
│       │   │   └── weight      [8, 8]     float32     64  muon   ndim == 2 and not glob("*embed*") and not glob("position*")
│       │   ├── k               1 param                64  muon
│       │   │   └── weight      [8, 8]     float32     64  muon   ndim == 2 and not glob("*embed*") and not glob("position*")
│       │   ├── v               1 param                64  muon
│       │   │   └── weight      [8, 8]     float32     64  muon   ndim == 2 and not glob("*embed*") and not glob("position*")
│       │   └── o               1 param                64  muon
│       │       └── weight      [8, 8]     float32     64  muon   ndim == 2 and not glob("*embed*") and not glob("position*")
│       ├── norm2               2 params               16  adamw
│       │   ├── weight          [8]        float32      8  adamw  (fallback)
│       │   └── bias            [8]        float32      8  adamw  (fallback)
│       └── mlp                 4 params              552  muon 93% | adamw 7%
│           └── layers          4 params              552  muon 93% | adamw 7%
│               ├── 0           2 params              288  muon 89% | adamw 11%
│               │   ├── weight  [32, 8]    float32    256  muon   ndim == 2 and not glob("*embed*") and not glob("position*")
│               │   └── bias    [32]       float32     32  adamw  (fallback)
│               └── 2           2 params              264  muon 97% | adamw 3%
│                   ├── weight  [8, 32]    float32    256  muon   ndim == 2 and not glob("*embed*") and not glob("position*")
│                   └── bias    [8]        float32      8  adamw  (fallback)
└── norm                        2 params               16  adamw
    ├── weight                  [8]        float32      8  adamw  (fallback)
    └── bias                    [8]        float32      8  adamw  (fallback)
"""

CNN = """\
group  optimizer                                      rule        params  elements  share  notes
conv   SGD(lr=0.1, momentum=0.9)                      ndim == 4        2     1,224    64%
rest   Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08)  (fallback)       4       674    36%

SmallCNN        6 params                1,898  conv 64% | rest 36%
├── conv1       2 params                   80  conv 90% | rest 10%
│   ├── weight  [8, 3, 3, 1]   float32     72  conv  ndim == 4
│   └── bias    [8]            float32      8  rest  (fallback)
├── conv2       2 params                1,168  conv 99% | rest 1%
│   ├── weight  [16, 3, 3, 8]  float32  1,152  conv  ndim == 4
│   └── bias    [16]           float32     16  rest  (fallback)
└── head        2 params                  650  rest
    ├── weight  [10, 64]       float32    640  rest  (fallback)
    └── bias    [10]           float32     10  rest  (fallback)
"""

MISTAKES = """\
group  optimizer                                                          rule                          params  elements  share  notes
muon   Muon(lr=0.02, momentum=0.95, weight_decay=0.01)                    ndim == 2                          3       160    75%  ! Muon on the output head (1); also matched by later rules (3)
sgd    SGD(lr=0.1)                                                        glob("*.weight")                   2        16     8%
conv   SGD(lr=0.1, momentum=0.9)                                          ndim == 4                          0         0     0%  ! dead rule: matches nothing
adam   Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08)                      glob("head.*") and ndim == 2       0         0     0%  ! shadowed: earlier rules took all it matches
adamw  AdamW(lr=0.001, betas=(0.9, 0.999), weight_decay=0.01, eps=1e-08)  (fallback)                         5        36    17%  weight decay 0.01 (5)
! error: rule 'conv' (ndim == 4) matches no parameter; fix: compare it with the parameters' paths, shapes and module classes (assignment.to_frame()), or remove the group
! error: rule 'adam' (glob("head.*") and ndim == 2) is shadowed: the 1 parameter it matches is taken by earlier rules ('muon'); the first match wins; fix: move 'adam' before 'muon', or narrow the earlier rule
! warning: Muon (group 'muon') takes the output head head.weight: Muon is for hidden layers; its authors optimise embeddings and classifier heads with AdamW (Keller Jordan's write-up "Muon: An optimizer for hidden layers in neural networks" and the README of github.com/KellerJordan/Muon), as does Moonshot's Moonlight code for embed_tokens and lm_head: head.weight; fix: add `and not glob("head.*")` to the rule of 'muon', so that the fallback 'adamw' takes them
note: 3 parameters that 'muon' took are also matched by later rules ('sgd', 'adam'); the first match wins, as in MLX's MultiOptimizer: layers.0.weight, layers.1.weight, head.weight; fix: reorder or narrow the rules if a later one should take them
note: AdamW (group 'adamw', weight_decay=0.01) decays 5 parameters that are norm scales, biases or embeddings; decay regularises weight matrices, but pulls a scale or a bias towards zero and shrinks the embeddings of rare tokens: layers.0.bias, layers.1.bias, norms.0.bias and 2 more; fix: give them a group with weight_decay=0 (multiopt_lab.recipes.no_weight_decay builds one), or keep it if you mean it

MLP                 10 params           212  muon 75% | sgd 8% | adamw 17%  ! 1 flagged below
├── layers          4 params            144  muon 89% | adamw 11%
│   └── [0..1]      4 params            144  muon 89% | adamw 11%           2 identical, one shown
│       ├── weight  [8, 8]     float32   64  muon   ndim == 2               also matched by sgd
│       └── bias    [8]        float32    8  adamw  (fallback)
├── norms           4 params             32  sgd 50% | adamw 50%
│   └── [0..1]      4 params             32  sgd 50% | adamw 50%            2 identical, one shown
│       ├── weight  [8]        float32    8  sgd    glob("*.weight")
│       └── bias    [8]        float32    8  adamw  (fallback)
└── head            2 params             36  muon 89% | adamw 11%           ! 1 flagged below
    ├── weight      [4, 8]     float32   32  muon   ndim == 2               ! Muon on the output head; also matched by sgd, adam
    └── bias        [4]        float32    4  adamw  (fallback)
"""


# The same at the default width (100 columns): the legend puts each group's words under its
# counts, the warnings break between words, the tree drops the dtype and shortens the notes.
MISTAKES_100 = """\
group  params  elements  share
muon        3       160    75%
  optimizer  Muon(lr=0.02, momentum=0.95, weight_decay=0.01)
  rule       ndim == 2
  ! Muon on the output head (1); also matched by later rules (3)
sgd         2        16     8%
  optimizer  SGD(lr=0.1)
  rule       glob("*.weight")
conv        0         0     0%
  optimizer  SGD(lr=0.1, momentum=0.9)
  rule       ndim == 4
  ! dead rule: matches nothing
adam        0         0     0%
  optimizer  Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08)
  rule       glob("head.*") and ndim == 2
  ! shadowed: earlier rules took all it matches
adamw       5        36    17%
  optimizer  AdamW(lr=0.001, betas=(0.9, 0.999), weight_decay=0.01, eps=1e-08)
  rule       (fallback)
  weight decay 0.01 (5)
! error: rule 'conv' (ndim == 4) matches no parameter; fix: compare it with the parameters' paths,
  shapes and module classes (assignment.to_frame()), or remove the group
! error: rule 'adam' (glob("head.*") and ndim == 2) is shadowed: the 1 parameter it matches is taken
  by earlier rules ('muon'); the first match wins; fix: move 'adam' before 'muon', or narrow the
  earlier rule
! warning: Muon (group 'muon') takes the output head head.weight: Muon is for hidden layers; its
  authors optimise embeddings and classifier heads with AdamW (Keller Jordan's write-up "Muon: An
  optimizer for hidden layers in neural networks" and the README of github.com/KellerJordan/Muon),
  as does Moonshot's Moonlight code for embed_tokens and lm_head: head.weight; fix: add `and not
  glob("head.*")` to the rule of 'muon', so that the fallback 'adamw' takes them
note: 3 parameters that 'muon' took are also matched by later rules ('sgd', 'adam'); the first match
  wins, as in MLX's MultiOptimizer: layers.0.weight, layers.1.weight, head.weight; fix: reorder or
  narrow the rules if a later one should take them
note: AdamW (group 'adamw', weight_decay=0.01) decays 5 parameters that are norm scales, biases or
  embeddings; decay regularises weight matrices, but pulls a scale or a bias towards zero and
  shrinks the embeddings of rare tokens: layers.0.bias, layers.1.bias, norms.0.bias and 2 more; fix:
  give them a group with weight_decay=0 (multiopt_lab.recipes.no_weight_decay builds one), or keep
  it if you mean it

MLP                 10 params  212  muon 75% | sgd 8% | adamw 17%  ! 1 flagged below
├── layers          4 params   144  muon 89% | adamw 11%
│   └── [0..1]      4 params   144  muon 89% | adamw 11%           2 identical, one shown
│       ├── weight  [8, 8]      64  muon   ndim == 2               also matched by sgd
│       └── bias    [8]          8  adamw  (fallback)
├── norms           4 params    32  sgd 50% | adamw 50%
│   └── [0..1]      4 params    32  sgd 50% | adamw 50%            2 identical, one shown
│       ├── weight  [8]          8  sgd    glob("*.weight")
│       └── bias    [8]          8  adamw  (fallback)
└── head            2 params    36  muon 89% | adamw 11%           ! 1 flagged below
    ├── weight      [4, 8]      32  muon   ndim == 2               ! Muon on the output head; also…
    └── bias        [4]          4  adamw  (fallback)
"""

# A rule for 2-D matrices on a mixture of experts: the 3-D expert stacks fall to the
# fallback beside the Linear weights the rule took, and are flagged as near misses.
MOE_BEFORE = """\
group  rule                                 params  elements  share  notes
muon   ndim == 2 and module != "Embedding"      11       672    36%
adamw  (fallback)                               10     1,192    64%  ! near miss of muon (4)
! warning: the fallback 'adamw' took 4 parameters that look like what 'muon' took (the same name and kind of layer, in the same block) in another form: SwitchLinear [2, 16, 8] where 'muon' took Linear [8, 8]; SwitchLinear [2, 8, 16] where 'muon' took Linear [8, 8]: layers.0.moe.experts.up.weight, layers.0.moe.experts.down.weight, layers.1.moe.experts.up.weight and 1 more; fix: add `or module == "SwitchLinear"` to the rule of 'muon' if they belong with what it took; if they belong to 'adamw', the split is as intended

TinyMoE                         21 params            1,864  muon 36% | adamw 64%                        ! 4 flagged below
├── embed                       1 param                128  adamw
│   └── weight                  [16, 8]     float32    128  adamw  (fallback)
├── layers                      18 params            1,600  muon 34% | adamw 66%                        ! 4 flagged below
│   └── [0..1]                  18 params            1,600  muon 34% | adamw 66%                        ! 4 flagged below; 2 identical, one shown
│       ├── norm1               1 param                  8  adamw
│       │   └── weight          [8]         float32      8  adamw  (fallback)
│       ├── attn                4 params               256  muon
│       │   ├── q               1 param                 64  muon
│       │   │   └── weight      [8, 8]      float32     64  muon   ndim == 2 and module != "Embedding"
│       │   ├── k               1 param                 64  muon
│       │   │   └── weight      [8, 8]      float32     64  muon   ndim == 2 and module != "Embedding"
│       │   ├── v               1 param                 64  muon
│       │   │   └── weight      [8, 8]      float32     64  muon   ndim == 2 and module != "Embedding"
│       │   └── o               1 param                 64  muon
│       │       └── weight      [8, 8]      float32     64  muon   ndim == 2 and module != "Embedding"
│       ├── norm2               1 param                  8  adamw
│       │   └── weight          [8]         float32      8  adamw  (fallback)
│       └── moe                 3 params               528  muon 3% | adamw 97%                         ! 2 flagged below
│           ├── gate            1 param                 16  muon
│           │   └── weight      [2, 8]      float32     16  muon   ndim == 2 and module != "Embedding"
│           └── experts         2 params               512  adamw                                       ! 2 flagged below
│               ├── up          1 param                256  adamw                                       ! 1 flagged below
│               │   └── weight  [2, 16, 8]  float32    256  adamw  (fallback)                           ! near miss of muon
│               └── down        1 param                256  adamw                                       ! 1 flagged below
│                   └── weight  [2, 8, 16]  float32    256  adamw  (fallback)                           ! near miss of muon
├── norm                        1 param                  8  adamw
│   └── weight                  [8]         float32      8  adamw  (fallback)
└── head                        1 param                128  muon
    └── weight                  [16, 8]     float32    128  muon   ndim == 2 and module != "Embedding"
"""

# At the default width the rule column is shortened first, the near-miss notes stay whole.
MOE_BEFORE_100 = """\
group  rule                                 params  elements  share  notes
muon   ndim == 2 and module != "Embedding"      11       672    36%
adamw  (fallback)                               10     1,192    64%  ! near miss of muon (4)
! warning: the fallback 'adamw' took 4 parameters that look like what 'muon' took (the same name and
  kind of layer, in the same block) in another form: SwitchLinear [2, 16, 8] where 'muon' took
  Linear [8, 8]; SwitchLinear [2, 8, 16] where 'muon' took Linear [8, 8]:
  layers.0.moe.experts.up.weight, layers.0.moe.experts.down.weight, layers.1.moe.experts.up.weight
  and 1 more; fix: add `or module == "SwitchLinear"` to the rule of 'muon' if they belong with what
  it took; if they belong to 'adamw', the split is as intended

TinyMoE                         21 params   1,864  muon 36% | adamw 64%  ! 4 flagged below
├── embed                       1 param       128  adamw
│   └── weight                  [16, 8]       128  adamw  (fallback)
├── layers                      18 params   1,600  muon 34% | adamw 66%  ! 4 flagged below
│   └── [0..1]                  18 params   1,600  muon 34% | adamw 66%  ! 4 flagged below; 2 ident…
│       ├── norm1               1 param         8  adamw
│       │   └── weight          [8]             8  adamw  (fallback)
│       ├── attn                4 params      256  muon
│       │   ├── q               1 param        64  muon
│       │   │   └── weight      [8, 8]         64  muon   ndim == 2 an…
│       │   ├── k               1 param        64  muon
│       │   │   └── weight      [8, 8]         64  muon   ndim == 2 an…
│       │   ├── v               1 param        64  muon
│       │   │   └── weight      [8, 8]         64  muon   ndim == 2 an…
│       │   └── o               1 param        64  muon
│       │       └── weight      [8, 8]         64  muon   ndim == 2 an…
│       ├── norm2               1 param         8  adamw
│       │   └── weight          [8]             8  adamw  (fallback)
│       └── moe                 3 params      528  muon 3% | adamw 97%   ! 2 flagged below
│           ├── gate            1 param        16  muon
│           │   └── weight      [2, 8]         16  muon   ndim == 2 an…
│           └── experts         2 params      512  adamw                 ! 2 flagged below
│               ├── up          1 param       256  adamw                 ! 1 flagged below
│               │   └── weight  [2, 16, 8]    256  adamw  (fallback)     ! near miss of muon
│               └── down        1 param       256  adamw                 ! 1 flagged below
│                   └── weight  [2, 8, 16]    256  adamw  (fallback)     ! near miss of muon
├── norm                        1 param         8  adamw
│   └── weight                  [8]             8  adamw  (fallback)
└── head                        1 param       128  muon
    └── weight                  [16, 8]       128  muon   ndim == 2 an…
"""

# The same model with a rule that names the layers: no warning, and the fallback quiet.
MOE_AFTER = """\
group  rule                                                                       params  elements  share  notes
muon   ndim >= 2 and module in ("Linear", "SwitchLinear") and within("MoEBlock")      14     1,568    84%
adamw  (fallback)                                                                      7       296    16%

TinyMoE                         21 params            1,864  muon 84% | adamw 16%
├── embed                       1 param                128  adamw
│   └── weight                  [16, 8]     float32    128  adamw  (fallback)
├── layers                      18 params            1,600  muon 98% | adamw 2%
│   └── [0..1]                  18 params            1,600  muon 98% | adamw 2%                                                               2 identical, one shown
│       ├── norm1               1 param                  8  adamw
│       │   └── weight          [8]         float32      8  adamw  (fallback)
│       ├── attn                4 params               256  muon
│       │   ├── q               1 param                 64  muon
│       │   │   └── weight      [8, 8]      float32     64  muon   ndim >= 2 and module in ("Linear", "SwitchLinear") and within("MoEBlock")
│       │   ├── k               1 param                 64  muon
│       │   │   └── weight      [8, 8]      float32     64  muon   ndim >= 2 and module in ("Linear", "SwitchLinear") and within("MoEBlock")
│       │   ├── v               1 param                 64  muon
│       │   │   └── weight      [8, 8]      float32     64  muon   ndim >= 2 and module in ("Linear", "SwitchLinear") and within("MoEBlock")
│       │   └── o               1 param                 64  muon
│       │       └── weight      [8, 8]      float32     64  muon   ndim >= 2 and module in ("Linear", "SwitchLinear") and within("MoEBlock")
│       ├── norm2               1 param                  8  adamw
│       │   └── weight          [8]         float32      8  adamw  (fallback)
│       └── moe                 3 params               528  muon
│           ├── gate            1 param                 16  muon
│           │   └── weight      [2, 8]      float32     16  muon   ndim >= 2 and module in ("Linear", "SwitchLinear") and within("MoEBlock")
│           └── experts         2 params               512  muon
│               ├── up          1 param                256  muon
│               │   └── weight  [2, 16, 8]  float32    256  muon   ndim >= 2 and module in ("Linear", "SwitchLinear") and within("MoEBlock")
│               └── down        1 param                256  muon
│                   └── weight  [2, 8, 16]  float32    256  muon   ndim >= 2 and module in ("Linear", "SwitchLinear") and within("MoEBlock")
├── norm                        1 param                  8  adamw
│   └── weight                  [8]         float32      8  adamw  (fallback)
└── head                        1 param                128  adamw
    └── weight                  [16, 8]     float32    128  adamw  (fallback)
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
        assert render_text(optimizer.assign(model), optimizer, root_name="TinyGPT", width=None) == GPT.rstrip("\n")

    def test_cnn(self):
        optimizer = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(1e-3)], ["ndim == 4"], labels=["conv", "rest"])
        assert render_text(optimizer.assign(SmallCNN()), optimizer, root_name="SmallCNN") == CNN.rstrip("\n")  # fits 100

    def test_model_with_deliberate_mistakes(self):
        optimizer = mistakes_optimizer()
        text = render_text(optimizer.assign(MLP(8, [8, 8], 4, norm=True)), optimizer, root_name="MLP", width=None)
        assert text == MISTAKES.rstrip("\n")

    def test_the_default_width_shortens_cells_and_breaks_messages_between_words(self):
        optimizer = mistakes_optimizer()
        text = render_text(optimizer.assign(MLP(8, [8, 8], 4, norm=True)), optimizer, root_name="MLP")
        assert text == MISTAKES_100.rstrip("\n")

    def test_near_misses_flagged_then_gone_once_the_rule_names_the_layers(self):
        model = TinyMoE(16, dims=8, layers=2, heads=2, experts=2, top_k=1)
        before = assign(model, ['ndim == 2 and module != "Embedding"'], ["muon", "adamw"])
        assert render_text(before, root_name="TinyMoE", width=None) == MOE_BEFORE.rstrip("\n")
        assert render_text(before, root_name="TinyMoE") == MOE_BEFORE_100.rstrip("\n")
        rule = 'ndim >= 2 and module in ("Linear", "SwitchLinear") and within("MoEBlock")'
        after = assign(model, [rule], ["muon", "adamw"])
        assert render_text(after, root_name="TinyMoE", width=None) == MOE_AFTER.rstrip("\n")
        assert "!" not in MOE_AFTER

    def test_an_intended_fallback_shows_no_warning(self):
        # Norms, biases and embeddings left to AdamW on purpose: no "!" anywhere (issue 15).
        gpt = render_text(gpt_optimizer().assign(TinyGPT(16, dims=8, layers=3, heads=2, max_length=8)))
        cnn = render_text(assign(SmallCNN(), ["ndim == 4"], ["conv", "rest"]))
        for text in (gpt, cnn):
            assert "(fallback)" in text and "!" not in text and "flagged" not in text

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
        assert text == "AdamW(lr=cosine_decay(0.001, 100, 0), betas=(0.9, 0.999), weight_decay=0.01, eps=1e-08)"
        warm_up = optim.join_schedules([optim.linear_schedule(0, 1e-3, 10), optim.cosine_decay(1e-3, 90)], [10])
        assert describe_optimizer(optim.SGD(learning_rate=warm_up)) == \
            "SGD(lr=join_schedules([linear_schedule(0, 0.001, 10), cosine_decay(0.001, 90, 0)], [10]))"
        assert describe_optimizer(optim.SGD(learning_rate=lambda step: 0.1 * step)) == "SGD(lr=schedule(<lambda>))"

    def test_optimizer_count_must_match_groups(self):
        with pytest.raises(ValueError, match="Expected one optimizer per group \\(3\\), found 2"):
            optimizers_of([optim.SGD(0.1), optim.SGD(0.1)], 3)
