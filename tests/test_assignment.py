# Tests the private modules' own units: multiopt_lab._src.rules.cache,
#   multiopt_lab._src.trees.flatten.
"""assign(): routing identical to MultiOptimizer on real mlx.nn models, and the Assignment API."""

from __future__ import annotations

import mlx.core as mx
import pandas as pd
import pytest
from mlx.utils import tree_flatten

from models import cnn, groups_by_mlx, sequential, transformer
from multiopt_lab import Assignment, Move, ParameterTable, RuleError, assign, rule
from multiopt_lab._src.rules.cache import clear_selection_cache

MUON = 'ndim == 2 and not glob("*embed*") and "lm_head" not in path'


FILTER_SETS = [
    [MUON],
    [MUON, 'name == "bias" or "norm" in path'],
    ["ndim >= 2", "ndim == 2"],  # the second is shadowed
    ["ndim == 4", "ndim == 1", 'glob("*")'],
    ['regex(r"layers\\.1\\.")', lambda p, a: a.ndim == 2, "size < 20"],
    ["ndim == 3"],  # dead on every model
    [],
]
MODELS = {
    "transformer": lambda: transformer(),
    "tied transformer": lambda: transformer(tied=True),
    "cnn": cnn,
    "sequential": sequential,
}


class TestRoutingMatchesMLX:
    @pytest.mark.parametrize("model_name", list(MODELS))
    @pytest.mark.parametrize("filters", FILTER_SETS, ids=lambda f: str(len(f)))
    def test_same_groups_as_multioptimizer(self, model_name, filters):
        params = MODELS[model_name]().trainable_parameters()
        a = assign(params, filters)
        assert a.group_index == groups_by_mlx(params, [rule(f) if isinstance(f, str) else f for f in filters])
        assert list(a.labels) == [p for p, _ in tree_flatten(params)]

    def test_rule_asked_only_about_what_earlier_rules_left(self):
        # shape[1] fails on 1-D parameters, but "ndim == 1" takes them all first, as in MLX.
        params = sequential().trainable_parameters()
        a = assign(params, ["ndim == 1", "shape[1] > 4"], ["bias", "wide", "rest"])
        assert a.labels == {"layers.0.weight": "rest", "layers.0.bias": "bias",
                            "layers.3.weight": "wide", "layers.3.bias": "bias"}
        assert a.matched["layers.0.bias"] == ("bias",)  # rule 2 never asked about it

    def test_rule_failing_on_a_parameter_it_is_asked_about_raises(self):
        with pytest.raises(RuleError, match="'layers.0.bias'"):
            assign(sequential(), ["ndim == 0", "shape[1] > 4"])


class TestModels:
    def test_transformer_untied(self):
        a = assign(transformer(), [MUON], ["muon", "adamw"])
        assert set(a.paths_of("muon")) == {f"layers.{i}.{m}" for i in range(2) for m in (
            "attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight",
            "mlp.layers.0.weight", "mlp.layers.2.weight")}
        assert "lm_head.weight" in a.paths_of("adamw") and "embed.weight" in a.paths_of("adamw")

    def test_tied_head_has_no_lm_head(self):
        a = assign(transformer(tied=True), [MUON], ["muon", "adamw"])
        assert not any("lm_head" in p for p in a.labels)
        assert a.labels["embed.weight"] == "adamw"

    def test_module_gives_trainable_parameters_only(self):
        model = cnn()
        from_module = assign(model, ["ndim == 4"])
        assert "bn.running_mean" not in from_module.labels
        assert "bn.running_mean" in assign(model.parameters(), ["ndim == 4"]).labels
        assert from_module.paths_of("group_0") == ("conv1.weight", "conv2.weight")

    def test_frozen_parameters_are_left_out(self):
        model = transformer()
        model.embed.freeze()
        assert "embed.weight" not in assign(model, [MUON]).labels

    def test_parameterless_layers_vanish(self):
        a = assign(sequential(), ["ndim == 2"])
        assert list(a.labels) == ["layers.0.weight", "layers.0.bias", "layers.3.weight", "layers.3.bias"]

    def test_table_and_empty_tree(self):
        table = ParameterTable.from_tree(sequential())
        assert assign(table, ["ndim == 2"]).table is table
        empty = assign({}, ["ndim == 2"], ["a", "b"])
        assert empty.labels == {} and empty.summary()["count"].tolist() == [0, 0]


class TestLabels:
    def test_default_labels(self):
        assert assign(sequential(), ["ndim == 2", "ndim == 1"]).group_labels == ("group_0", "group_1", "group_2")

    @pytest.mark.parametrize("filters, labels, error, message", [
        (["ndim == 2"], ["a"], ValueError, "Given 1 filters but 0 needed"),
        (["ndim == 2", "ndim == 1"], ["a", "b", "c", "d"], ValueError, "Given 2 filters but 3 needed"),
        (["ndim == 2"], ["a", "a"], ValueError, r"unique; \['a'\] appear more than once"),
        (["ndim == 2"], ["a", ""], ValueError, "non-empty strings"),
        (["ndim == 2"], ["a", 3], ValueError, "non-empty strings"),
        (["ndim == 2"], "ab", TypeError, "list of strings"),
        ("ndim == 2", None, TypeError, "wrap a single filter in a list"),
        ([3], None, TypeError, "expected a rule string, a Rule or a callable"),
        (["ndims == 2"], None, RuleError, "did you mean 'ndim'"),
    ])
    def test_bad_input(self, filters, labels, error, message):
        with pytest.raises(error, match=message):
            assign(sequential(), filters, labels)

    def test_rules_carry_their_group_label(self):
        a = assign(sequential(), ["ndim == 2", lambda p, a: True], ["muon", "sgd", "adamw"])
        assert [r.label if r else None for r in a.rules] == ["muon", "sgd", None]
        assert a.rules[0].text == "ndim == 2"


class TestAssignmentAPI:
    @pytest.fixture
    def a(self) -> Assignment:
        return assign(sequential(), ["ndim == 2", 'name == "bias" or glob("*.3.*")'], ["muon", "nodecay", "adamw"])

    def test_labels_index_matched(self, a):
        assert a.labels == {"layers.0.weight": "muon", "layers.0.bias": "nodecay",
                            "layers.3.weight": "muon", "layers.3.bias": "nodecay"}
        assert a.group_index["layers.0.bias"] == 1
        assert a.matched == {"layers.0.weight": ("muon",), "layers.0.bias": ("nodecay",),
                             "layers.3.weight": ("muon", "nodecay"), "layers.3.bias": ("nodecay",)}
        assert a.paths_of("adamw") == ()
        with pytest.raises(KeyError, match="no group 'sgd'; the groups are"):
            a.paths_of("sgd")

    def test_to_frame(self, a):
        frame = a.to_frame()
        assert {"path", "group", "rule", "also_matched", "shape", "dtype", "size"} <= set(frame.columns)
        row = frame.set_index("path").loc["layers.3.weight"]
        assert (row["group"], row["rule"], row["also_matched"]) == ("muon", "ndim == 2", ("nodecay",))
        assert (row["shape"], row["dtype"], row["size"]) == ((2, 8), "float32", 16)
        assert frame["path"].tolist() == list(a.labels)
        # One meaning per word, as in rules: module is the class, module_path the path.
        assert row["module"] == "Linear" and row["module_path"] == "layers.3"
        assert "module_class" not in frame.columns

    def test_summary(self, a):
        summary = a.summary()
        assert summary.index.tolist() == ["muon", "nodecay", "adamw"]
        assert summary["count"].tolist() == [2, 2, 0]
        assert summary["size"].tolist() == [48, 10, 0]
        assert summary["share"].sum() == pytest.approx(1.0)
        assert summary.loc["muon", "share"] == pytest.approx(48 / 58)

    def test_diff(self, a):
        b = a.reassign(["ndim == 2 and shape[0] > 4", 'name == "bias"'])
        assert a.diff(b) == [Move("layers.3.weight", "muon", "adamw")]
        assert b.diff(a) == [Move("layers.3.weight", "adamw", "muon")]
        other = assign({"x": mx.zeros((2,)), "layers": [{"weight": mx.zeros((8, 4))}]}, ["ndim == 2"],
                       ["muon", "adamw"])
        assert a.diff(other) == [Move("layers.0.bias", "nodecay", None), Move("layers.3.weight", "muon", None),
                                 Move("layers.3.bias", "nodecay", None), Move("x", None, "adamw")]

    def test_reassign_keeps_labels_and_table(self, a):
        b = a.reassign(["ndim == 1", "ndim == 2"])
        assert b.group_labels == a.group_labels and b.table is a.table

    def test_text_form_exact(self):
        a = assign(transformer(depth=1), [MUON, 'ndim == 1 or glob("*.mlp.*")'], ["muon", "adamw", "sgd"])
        assert a.text() == str(a)
        # At the default width (100) the long rule is shortened; with no limit it is whole.
        assert all(len(line) <= 100 for line in a.text().splitlines())
        assert '"lm_head" not in p…' in a.text()
        assert a.text(width=None) == """\
parameter  shape     dtype    size  group  rule
embed
  weight   [32, 16]  float32   512  sgd    (fallback)
layers.0.attn_norm
  weight   [16]      float32    16  adamw  ndim == 1 or glob("*.mlp.*")
layers.0.attn.q
  weight   [16, 16]  float32   256  muon   ndim == 2 and not glob("*embed*") and "lm_head" not in path
layers.0.attn.k
  weight   [16, 16]  float32   256  muon   ndim == 2 and not glob("*embed*") and "lm_head" not in path
layers.0.attn.v
  weight   [16, 16]  float32   256  muon   ndim == 2 and not glob("*embed*") and "lm_head" not in path
layers.0.attn.o
  weight   [16, 16]  float32   256  muon   ndim == 2 and not glob("*embed*") and "lm_head" not in path
layers.0.mlp_norm
  weight   [16]      float32    16  adamw  ndim == 1 or glob("*.mlp.*")
  bias     [16]      float32    16  adamw  ndim == 1 or glob("*.mlp.*")
layers.0.mlp.layers.0
  weight   [32, 16]  float32   512  muon   ndim == 2 and not glob("*embed*") and "lm_head" not in path  [also: adamw]
  bias     [32]      float32    32  adamw  ndim == 1 or glob("*.mlp.*")
layers.0.mlp.layers.2
  weight   [16, 32]  float32   512  muon   ndim == 2 and not glob("*embed*") and "lm_head" not in path  [also: adamw]
  bias     [16]      float32    16  adamw  ndim == 1 or glob("*.mlp.*")
norm
  weight   [16]      float32    16  adamw  ndim == 1 or glob("*.mlp.*")
  bias     [16]      float32    16  adamw  ndim == 1 or glob("*.mlp.*")
lm_head
  weight   [32, 16]  float32   512  sgd    (fallback)

muon   6 parameters  2,048 values   64.0%
adamw  7 parameters    128 values    4.0%
sgd    2 parameters  1,024 values   32.0%"""

    def test_repr_is_truncated(self):
        a = assign(transformer(depth=4), [MUON])
        shown = repr(a)
        assert "... " in shown and "more parameters" in shown
        assert sum(1 for line in shown.splitlines() if line.startswith("  ")) <= 40


class TestCaching:
    def test_value_dependent_callables_run_every_time_structural_ones_once(self):
        clear_selection_cache()
        calls = {"values": 0, "structural": 0}

        def by_values(path, array):
            calls["values"] += 1
            return path.endswith("bias")

        def structural(path, array):
            calls["structural"] += 1
            return path.endswith("weight")
        structural.structural = True

        table = ParameterTable.from_tree(sequential())
        for _ in range(2):
            assign(table, [by_values, structural])
        assert calls == {"values": 8, "structural": 4}

    def test_changing_one_rule_reuses_the_others(self):
        clear_selection_cache()
        calls = []

        def spy(path, array):
            calls.append(path)
            return False
        spy.structural = True
        table = ParameterTable.from_tree(sequential())
        a = assign(table, [spy, "ndim == 2"])
        b = a.reassign([spy, "ndim == 1"])
        assert len(calls) == 4  # spy evaluated once, reused after the other rule changed
        assert b.labels["layers.0.bias"] == "group_1"

    def test_same_structure_different_tree_hits_cache(self):
        one, two = ParameterTable.from_tree(sequential()), ParameterTable.from_tree(sequential())
        assert one.key == two.key and hash(one.key) == hash(two.key)
        assert one.key != ParameterTable.from_tree(cnn()).key

    def test_frame_is_a_dataframe(self):
        assert isinstance(assign(sequential(), []).to_frame(), pd.DataFrame)


@pytest.mark.parametrize("tree", [
    transformer().parameters(), cnn().parameters(), sequential().parameters(),
    {"a": [(1, {"b": 2}), []], "c": 3, "d": {}}, [], {}, 5, [[[0]]],
])
def test_flatten_matches_mlx_tree_flatten(tree):
    from multiopt_lab._src.trees.flatten import flatten_tree
    assert flatten_tree(tree) == tree_flatten(tree)
