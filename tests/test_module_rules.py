# Tests the private modules' own units: multiopt_lab._src.partition.modules,
#   multiopt_lab._src.render.search.
"""Rules that read the model: ``module``, ``modules`` and ``within``, on real mlx-lm architectures."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

import multiopt_lab as mol
from models import transformer
from multiopt_lab.examples import MLP, SmallCNN, TinyGPT

pytest.importorskip("mlx_lm")
import mlx_lm_models  # noqa: E402  (needs mlx_lm)


def reference_chains(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """path -> class names from the model to the holder, read off MLX's own named_modules."""
    modules = dict(model.named_modules())
    chains = {}
    for path, _ in tree_flatten(model.trainable_parameters()):
        parts = path.split(".")[:-1]
        prefixes = [".".join(parts[:i]) for i in range(len(parts) + 1)]
        chains[path] = tuple(type(modules[p]).__name__ for p in prefixes if p in modules)
    return chains


@pytest.fixture(scope="module", params=mlx_lm_models.ALL)
def lm(request):
    return request.param, mlx_lm_models.build(request.param)


class TestModuleKindsOnMlxLm:
    def test_module_and_modules_are_what_holds_each_parameter(self, lm):
        _, model = lm
        table = mol.ParameterTable.from_tree(model)
        expected = reference_chains(model)
        assert table.has_modules
        assert dict(zip(table.paths, table.module_chains)) == expected
        assert list(table.module_names) == [chain[-1] for chain in expected.values()]

    def test_module_rule_selects_exactly_that_class(self, lm):
        name, model = lm
        chains = reference_chains(model)
        kinds = sorted({chain[-1] for chain in chains.values()})
        a = mol.assign(model, [f'module == "{kind}"' for kind in kinds], labels=kinds + ["rest"])
        for kind in kinds:
            assert a.paths_of(kind) == tuple(p for p, c in chains.items() if c[-1] == kind), (name, kind)
        assert a.paths_of("rest") == ()

    def test_within_the_blocks(self, lm):
        _, model = lm
        block = type(model.layers[0]).__name__
        a = mol.assign(model, [f'within("{block}")'], ["blocks", "rest"])
        inside = tuple(p for p, _ in tree_flatten(model.trainable_parameters()) if ".layers." in p)
        assert a.paths_of("blocks") == inside and inside

    def test_kinds_each_family_shows(self, lm):
        name, model = lm
        kinds = set(mol.ParameterTable.from_tree(model).module_names)
        if name in mlx_lm_models.DENSE:
            assert {"Embedding", "Linear", "RMSNorm"} <= kinds
        elif name in mlx_lm_models.MOE:
            assert "SwitchLinear" in kinds
        else:  # only the adapters train
            assert kinds <= {"LoRALinear", "LoRASwitchLinear"} and "LoRALinear" in kinds

    def test_matches_mlx_given_an_equivalent_callable(self, lm):
        name, model = lm
        chains = reference_chains(model)
        text = 'module in ("Linear", "LoRALinear") and ndim == 2 or module == "SwitchLinear"'

        def equivalent(path, _array):
            kind = chains[path][-1]
            return kind in ("Linear", "LoRALinear") and _array.ndim == 2 or kind == "SwitchLinear"

        steps = run_both(model, [optim.SGD(0.1, momentum=0.9), optim.Adam(1e-2)], [text], [equivalent])
        for ours, theirs in steps:
            assert all(np.array_equal(np.array(ours[p]), np.array(theirs[p])) for p in ours), name


def run_both(model, optimizers, ours_filters, mlx_filters, steps=2):
    """Train copies of ``model`` with our MultiOptimizer and MLX's: the parameters after each step."""
    import copy

    results = []
    twins = [copy.deepcopy(model), copy.deepcopy(model)]
    mine = mol.MultiOptimizer(copy.deepcopy(optimizers), ours_filters)
    theirs = optim.MultiOptimizer(copy.deepcopy(optimizers), mlx_filters)
    x = mlx_lm_models.tokens()
    for _ in range(steps):
        flat = []
        for twin, optimizer in zip(twins, (mine, theirs)):
            _, grads = nn.value_and_grad(twin, mlx_lm_models.loss_fn)(twin, x)
            optimizer.update(twin, grads)
            mx.eval(twin.parameters(), optimizer.state)
            flat.append(dict(tree_flatten(twin.trainable_parameters())))
        results.append(tuple(flat))
    return results


class TestNeedsTheModel:
    def test_a_parameter_dict_is_refused_with_how_to_fix(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        with pytest.raises(mol.RuleError, match="pass the model") as info:
            mol.assign(model.parameters(), ['ndim == 2 and within("Block")'])
        assert info.value.column == info.value.text.index("within")

    def test_called_as_an_mlx_filter(self):
        rule = mol.rule('module == "Linear"')
        with pytest.raises(mol.RuleError, match="pass the model"):
            rule("fc.weight", mx.zeros((2, 2)))
        opt = optim.MultiOptimizer([optim.SGD(0.1), optim.SGD(0.1)], [rule])
        model = nn.Linear(2, 2)
        with pytest.raises(mol.RuleError, match="pass the model"):
            opt.update(model, model.parameters())

    def test_optimizer_update_passes_the_model_and_a_dict_is_refused_unchanged(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        opt = mol.MultiOptimizer([optim.SGD(0.1), optim.SGD(0.01)], ['module == "Embedding"'],
                                 labels=["embed", "rest"])
        grads = model.parameters()
        with pytest.raises(mol.RuleError, match="pass the model"):
            opt.apply_gradients(grads, model.parameters())
        assert opt.last_assignment is None
        opt.update(model, grads)
        assert opt.last_assignment.paths_of("embed") == ("embed.weight", "position.weight")

    def test_routing_is_computed_once_per_structure(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        opt = mol.MultiOptimizer([optim.SGD(0.1), optim.SGD(0.01)], ['module == "Embedding"'])
        def loss(m, x):
            return m(x).sum()
        x = mx.zeros((1, 4), dtype=mx.int32)
        _, grads = nn.value_and_grad(model, loss)(model, x)
        opt.update(model, grads)
        version = opt.version
        for _ in range(3):
            _, grads = nn.value_and_grad(model, loss)(model, x)
            opt.update(model, grads)
        assert opt.version == version

    def test_init_with_the_model_and_train(self):
        from multiopt_lab.examples import sequence_task

        task = sequence_task("reverse")
        model = TinyGPT(task.vocab_size, dims=16, layers=1, heads=2)
        opt = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)],
                                 ['within("Block") and module == "Linear" and ndim == 2'])
        mol.train(model, opt, task.loss_fn, task.batch, 2, progress=False, compile=True)
        assert len(opt.last_assignment.paths_of("muon")) == 6

    def test_repartition_and_a_request_with_module_rules(self):
        model = transformer()
        opt = mol.MultiOptimizer([optim.SGD(0.1), optim.Adam(1e-3)], ["ndim == 2"])
        opt.init(model)
        moves = opt.repartition(['module == "Linear" and ndim == 2'], model)
        assert {m.path for m in moves} == {"embed.weight"}
        opt.request_repartition(['module == "Embedding"'])
        _, grads = nn.value_and_grad(model, lambda m, x: m(x).sum())(model, mx.array([[1, 2]]))
        opt.update(model, grads)
        assert opt.last_assignment.paths_of("sgd") == ("embed.weight",)


class TestLanguage:
    @pytest.mark.parametrize("text, fragment", [
        ("moduel == 'Linear'", "did you mean 'module'?"),
        ("witin('Block')", "did you mean 'within'?"),
        ("module == Linear", 'write module == "Linear"'),
        ("module == 2", "expected a string to compare with, found an int"),
        ("1 in modules", "this tuple holds no number"),
        ("within(Block)", 'expected a string, e.g. within("TransformerBlock")'),
        ('within("layers.*")', "to match paths use glob()"),
        ('within("A", "B")', "takes exactly one class name"),
        ("within", "within is a function: call it"),
    ])
    def test_mistakes_caught_while_typing(self, text, fragment):
        with pytest.raises(mol.RuleError) as info:
            mol.rule(text)
        assert fragment in info.value.message

    def test_modules_is_a_tuple_of_class_names(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        a = mol.assign(model, ['modules[-2] == "Attention"', '"Block" in modules'],
                       ["attn", "block", "rest"])
        assert a.paths_of("attn") == tuple(f"layers.0.attn.{x}.weight" for x in "qkvo")
        assert all(p.startswith("layers.0.") for p in a.paths_of("block"))

    def test_holder_counts_as_within(self):
        a = mol.assign(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)), ['within("LayerNorm")'])
        assert a.paths_of("group_0") == ("layers.1.weight", "layers.1.bias")

    def test_user_classes(self):
        class Gate(nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = mx.ones((3,))

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.gate = Gate()
                self.fc = nn.Linear(3, 3)
                self.bias = mx.zeros((3,))

        a = mol.assign(Net(), ['module == "Gate"', 'module == "Net"'], ["gate", "root", "rest"])
        assert a.paths_of("gate") == ("gate.scale",) and a.paths_of("root") == ("bias",)

    @pytest.mark.parametrize("model", [MLP(4, [4, 4], 2, norm=True), SmallCNN(), TinyGPT(16, dims=8, layers=2, heads=2)],
                             ids=["MLP", "SmallCNN", "TinyGPT"])
    def test_bulk_and_per_row_agree(self, model):
        table = mol.ParameterTable.from_tree(model)
        rule = mol.rule('module in ("Linear", "Conv2d") and ndim >= 2 or within("LayerNorm") '
                        'and name == "bias" or modules[0] == "TinyGPT" and glob("*embed*")')
        bulk = rule.select(table).tolist()
        for i in range(len(table)):  # each row alone: the subset path of the evaluator
            assert rule.select(table, rows=[i]).tolist() == [bulk[i]], table.paths[i]

    def test_same_paths_other_classes_are_not_confused_by_the_cache(self):
        class A(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)

        class B(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.QuantizedLinear(32, 2, bias=True, group_size=32, bits=4)
                self.fc.unfreeze()

        first = mol.assign(A(), ['module == "Linear"']).paths_of("group_0")
        second = mol.assign(B(), ['module == "Linear"']).paths_of("group_0")
        assert first == ("fc.weight", "fc.bias") and second == ()

    def test_rule_files_and_the_cli_keep_module_rules(self, tmp_path):
        from multiopt_lab.__main__ import main

        path = tmp_path / "rules.toml"
        mol.save_rules(path, ["muon", "adamw"], ['within("Block") and module == "Linear" and ndim == 2'])
        labels, rules = mol.load_rules(path)
        assert rules[0].needs_model and labels == ["muon", "adamw"]
        module = tmp_path / "factory_for_cli.py"
        module.write_text("from multiopt_lab.examples import TinyGPT\n"
                          "def build():\n    return TinyGPT(16, dims=8, layers=1, heads=2)\n")
        import sys
        sys.path.insert(0, str(tmp_path))
        try:
            assert main(["check", str(path), "--model", "factory_for_cli:build"]) == 0
        finally:
            sys.path.remove(str(tmp_path))


class TestSearchBox:
    def test_a_class_name_finds_what_such_modules_hold(self):
        from multiopt_lab._src.render.search import search_paths

        model = mlx_lm_models.build("mixtral")
        a = mol.assign(model, ["ndim == 2"])
        found = search_paths(a, "SwitchLinear")
        assert found.kind == "module" and len(found.paths) == 6
        assert search_paths(a, "MixtralSparseMoeBlock").paths == tuple(
            p for p in a.table.paths if ".block_sparse_moe." in p)
        rule = search_paths(a, 'module == "RMSNorm" and within("MixtralDecoderLayer")')
        assert rule.kind == "rule" and len(rule.paths) == 4
        # Without the model, a class name is a path glob and a module rule an error.
        bare = mol.assign(model.parameters(), ["ndim == 2"])
        assert search_paths(bare, "SwitchLinear").kind == "glob"
        assert "pass the model" in search_paths(bare, 'module == "RMSNorm"').summary()


def test_paths_that_are_not_the_models_are_named():
    from multiopt_lab._src.partition.modules import module_chains

    model = TinyGPT(16, dims=8, layers=1, heads=2)
    with pytest.raises(ValueError, match="'extra.weight' is not in the model given \\(TinyGPT\\)"):
        module_chains(model, ["embed.weight", "extra.weight"])
    with pytest.raises(ValueError, match="the path 'layers.5' is not in the model given"):
        mol.ParameterTable.from_tree({"layers": [{}] * 5 + [{"norm1": {"weight": mx.zeros((2,))}}]},
                                     model=model)
