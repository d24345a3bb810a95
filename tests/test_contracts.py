"""Optimizer contracts: what each group's optimizer expects of a parameter, checked on real
mlx-lm architectures, and seen at training time."""

from __future__ import annotations

import warnings

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest

import multiopt_lab as mol
from multiopt_lab import FindingWarning, OptimizerContract, declare_contract
from multiopt_lab.examples import MLP, TinyGPT, digits

pytest.importorskip("mlx_lm")
import mlx_lm_models  # noqa: E402  (needs mlx_lm)


def muon_adamw(rules, muon=None):
    return mol.MultiOptimizer([muon or optim.Muon(0.02), optim.AdamW(1e-3)], rules, labels=["muon", "adamw"])


def by_kind(diagnostics) -> dict[str, tuple]:
    return {f.kind: f for f in diagnostics.findings}


QWEN3_NORMS_IN_ATTENTION = tuple(f"model.layers.{i}.self_attn.{n}.weight" for i in (0, 1)
                                 for n in ("q_norm", "k_norm"))


class TestMuonBelowTwoDimensions:
    """Issue 24, item 1: Muon on Qwen3's attention norms went unseen."""

    @pytest.mark.parametrize("rule", ['glob("*attn*")', lambda path, array: "attn" in path])
    def test_qwen3_attn_rule_names_exactly_the_norms_inside_attention(self, rule):
        model = mlx_lm_models.build("qwen3")
        d = muon_adamw([rule]).assign(model).diagnostics
        (error,) = d.errors
        assert (error.kind, error.group) == ("too_few_dims", "muon")
        assert error.paths == QWEN3_NORMS_IN_ATTENTION
        # What MLX will actually do, and the fix.
        assert "momentum SGD" in error.message and "Muon" in error.message
        assert error.hint == "add `and ndim >= 2` to the rule of 'muon', so that the fallback 'adamw' takes them"
        assert not d.is_clean and "diagnostics: no warnings" not in str(d)

    def test_check_raises_on_it_by_default(self):
        model = mlx_lm_models.build("qwen3")
        with pytest.raises(mol.CoverageError, match="q_norm"):
            muon_adamw(['glob("*attn*")']).assign(model).check()

    def test_the_last_routed_assignment_knows_it_too(self):
        model = mlx_lm_models.build("qwen3")
        optimizer = muon_adamw(['glob("*attn*")'], optim.Muon(0.02))
        optimizer.init(model)
        assert optimizer.last_assignment.diagnostics.errors[0].paths == QWEN3_NORMS_IN_ATTENTION

    def test_a_single_muon_for_everything(self):
        d = mol.assign(MLP(4, [8], 2), [], ["muon"], optimizers=[optim.Muon(0.02)]).diagnostics
        error = d.of_kind("too_few_dims")[0]
        assert error.paths == ("layers.0.bias", "head.bias")
        assert "give them a group of their own before the fallback 'muon'" in error.hint


class TestMuonOnExpertStacks:
    """Issue 24, item 2: plain Muon on a mixture of experts' stacks went unseen."""

    @pytest.mark.parametrize("name", ["qwen3_moe", "mixtral", "deepseek_v3"])
    def test_plain_muon_on_stacks_is_a_warning_whose_fix_is_stacked_muon(self, name):
        model = mlx_lm_models.build(name)
        rule = ('module in ("Linear", "SwitchLinear", "MultiLinear") and not glob("lm_head.*") '
                'and not glob("*.gate.*")')
        d = muon_adamw([rule]).assign(model).diagnostics
        stack = by_kind(d)["flattened_stack"]
        table = mol.ParameterTable.from_tree(model)
        stacks = {p for p, k in zip(table.paths, table.module_names) if k in ("SwitchLinear", "MultiLinear")}
        assert stack.severity == "warning" and set(stack.paths) == stacks
        assert "StackedMuon" in stack.hint and "(stack, out * in)" in stack.message
        with_stacked = muon_adamw([rule], mol.recipes.StackedMuon(0.02)).assign(model).diagnostics
        assert "flattened_stack" not in by_kind(with_stacked)

    def test_a_stack_without_the_model_is_not_guessed(self):
        # A 3-D parameter of a parameter dict may be a Conv1d filter: nothing is said.
        tree = {"w": mx.zeros((2, 4, 4))}
        d = mol.assign(tree, ["True"], ["muon", "adamw"], optimizers=[optim.Muon(0.02), optim.AdamW(1e-3)]).diagnostics
        assert "flattened_stack" not in by_kind(d)


class TestMuonOnEmbeddingsAndHeads:
    def test_embedding_and_head_are_a_warning_citing_the_authors(self):
        model = mlx_lm_models.build("llama")
        d = muon_adamw(["ndim == 2"]).assign(model).diagnostics
        finding = by_kind(d)["embedding_or_head"]
        assert finding.severity == "warning"
        assert finding.paths == ("model.embed_tokens.weight", "lm_head.weight")
        assert "Keller Jordan" in finding.message and "Moonlight" in finding.message
        assert finding.hint == ('add `and module != "Embedding" and not glob("lm_head.*")` to the rule '
                                "of 'muon', so that the fallback 'adamw' takes them")

    def test_a_tied_head_is_the_embedding(self):
        model = mlx_lm_models.build("qwen3")  # tie_word_embeddings
        d = muon_adamw(["ndim == 2"]).assign(model).diagnostics
        assert by_kind(d)["embedding_or_head"].paths == ("model.embed_tokens.weight",)

    def test_a_lone_linear_layer_is_no_head(self):
        d = muon_adamw(["ndim == 2"]).assign(nn.Linear(4, 4)).diagnostics
        assert d.findings == () or "embedding_or_head" not in by_kind(d)


class TestWeightDecay:
    @pytest.mark.parametrize("decaying", [optim.AdamW(1e-3), optim.SGD(0.1, weight_decay=1e-4),
                                          optim.Lion(1e-4, weight_decay=0.1)])
    def test_decay_on_norms_biases_and_embeddings_is_a_note(self, decaying):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        optimizer = mol.MultiOptimizer([optim.Muon(0.02), decaying],
                                       ['within("Block") and module == "Linear" and ndim == 2'])
        note = by_kind(optimizer.assign(model).diagnostics)["weight_decay"]
        assert note.severity == "note" and note.group == optimizer.labels[1]
        assert {"embed.weight", "position.weight", "layers.0.norm1.weight", "layers.0.mlp.layers.0.bias"} <= set(note.paths)
        assert "no_weight_decay" in note.hint

    def test_no_note_without_decay(self):
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        for optimizer in (optim.SGD(0.1), optim.Adam(1e-3), optim.AdamW(1e-3, weight_decay=0.0)):
            d = mol.assign(model, [], ["all"], optimizers=[optimizer]).diagnostics
            assert d.findings == (), type(optimizer).__name__


class TestRecipes:
    @pytest.mark.parametrize("name", mlx_lm_models.ALL)
    def test_no_error_or_warning_on_any_architecture(self, name):
        model = mlx_lm_models.build(name)
        made = []
        for recipe in (lambda: mol.recipes.muon(model),
                       lambda: mol.recipes.no_weight_decay(model, optim.AdamW(1e-3)),
                       lambda: mol.recipes.lora_plus(model, optim.AdamW(1e-3)),
                       lambda: mol.recipes.layerwise_lr_decay(model, optim.AdamW(1e-3))):
            try:
                made.append(recipe())
            except ValueError:  # the recipe does not fit this model (and says why)
                continue
        assert made
        for optimizer in made:
            d = optimizer.assign(model).diagnostics
            assert d.contracts_checked
            assert [f for f in d.findings if f.flagged] == [], (name, optimizer.labels, str(d))


class TestDeclaredContracts:
    def test_a_users_optimizer_class_and_its_subclasses(self):
        class Orthogonal(optim.SGD):
            pass

        class Faster(Orthogonal):
            pass

        declare_contract(Orthogonal, OptimizerContract(min_ndim=2, below_min_ndim="divides by zero on them",
                                                       hidden_layers_only=True, advice="hidden layers only"))
        model = TinyGPT(16, dims=8, layers=1, heads=2)
        d = mol.assign(model, ["True"], ["orth", "rest"], optimizers=[Faster(0.1), optim.Adam(1e-3)]).diagnostics
        assert by_kind(d)["too_few_dims"].message.endswith("and divides by zero on them")
        assert by_kind(d)["embedding_or_head"].message.endswith(": hidden layers only")

    def test_a_subclass_of_muon_inherits_its_contract_and_none_drops_it(self):
        class MyMuon(optim.Muon):
            pass

        tree = {"b": mx.zeros((4,))}
        assert mol.assign(tree, [], ["m"], optimizers=[MyMuon(0.02)]).diagnostics.errors
        declare_contract(MyMuon, None)
        assert not mol.assign(tree, [], ["m"], optimizers=[MyMuon(0.02)]).diagnostics.errors

    @pytest.mark.parametrize("cls, contract, error", [
        (optim.SGD(0.1), OptimizerContract(), "pass the class, not an instance"),
        (int, OptimizerContract(), "expected an optimizer class"),
        (optim.SGD, {"min_ndim": 2}, "expected an OptimizerContract or None, found dict"),
    ])
    def test_bad_declarations(self, cls, contract, error):
        with pytest.raises(TypeError, match=error):
            declare_contract(cls, contract)

    def test_bad_contract(self):
        with pytest.raises(ValueError, match="expected min_ndim to be an int >= 0, found -1"):
            OptimizerContract(min_ndim=-1)

    def test_one_optimizer_per_group(self):
        with pytest.raises(ValueError, match=r"expected one optimizer per group \(2: \['a', 'b'\]\), found 1"):
            mol.assign({"w": mx.zeros((2, 2))}, ["True"], ["a", "b"], optimizers=[optim.SGD(0.1)])


def digits_run(optimizer, **kwargs):
    data = digits()
    model = MLP(64, [16], 10)
    return mol.train(model, optimizer, data.loss_fn, data.batch, 2, progress=False, **kwargs)


def finding_warnings(caught) -> list:
    return [w.message.finding for w in caught if issubclass(w.category, FindingWarning)]


class TestSeenAtTrainingTime:
    """Issue 24: `train()` said nothing about Muon on the 1-D norms."""

    def test_train_warns_once_per_error_or_warning_naming_the_paths(self):
        optimizer = mol.MultiOptimizer([optim.Muon(0.02)], labels=["muon"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            digits_run(optimizer)
            digits_run(optimizer)  # the same findings again: reported already
        found = finding_warnings(caught)
        assert [(f.kind, f.paths) for f in found] == [("too_few_dims", ("layers.0.bias", "head.bias")),
                                                      ("embedding_or_head", ("head.weight",))]
        first = next(w for w in caught if issubclass(w.category, FindingWarning))
        assert "layers.0.bias, head.bias" in str(first.message)
        assert first.filename == __file__  # points at the caller of train()

    def test_a_plain_mlx_optimizer_is_checked_too(self):
        with pytest.warns(FindingWarning, match="momentum SGD on them"):
            digits_run(optim.Muon(0.02))

    def test_warn_findings_false_is_quiet_everywhere(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error", FindingWarning)
            digits_run(mol.MultiOptimizer([optim.Muon(0.02)]), warn_findings=False)
            digits_run(mol.MultiOptimizer([optim.Muon(0.02)]), warn_findings=False, compile=True)
            digits_run(optim.Muon(0.02), warn_findings=False)
            # The optimizer's own first update, outside train():
            model = nn.Linear(4, 4)
            optimizer = mol.MultiOptimizer([optim.Muon(0.02)], warn_findings=False)
            optimizer.update(model, model.parameters())

    def test_notes_never_warn(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error", FindingWarning)
            digits_run(optim.AdamW(1e-3))  # weight decay on the biases: a note

    def test_the_first_update_of_a_multi_optimizer_warns_once(self):
        model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        optimizer = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["True"])
        loss_and_grad = nn.value_and_grad(model, lambda m, x: m(x).sum())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                _, gradients = loss_and_grad(model, mx.ones((2, 4)))
                optimizer.update(model, gradients)
        found = finding_warnings(caught)
        assert [(f.kind, f.paths) for f in found] == [
            ("too_few_dims", ("layers.0.bias", "layers.1.weight", "layers.1.bias")),
            ("empty_group", ())]
        assert all(w.filename == __file__ for w in caught)  # points at optimizer.update(...)
        # A repartition is a new routing: its new findings are news, once.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            optimizer.repartition(["ndim == 2"], model)
            for _ in range(2):
                _, gradients = loss_and_grad(model, mx.ones((2, 4)))
                optimizer.update(model, gradients)
        assert finding_warnings(caught) == []  # ndim == 2: nothing wrong any more

    def test_mlx_lm_callback_warns_once(self, tmp_path):
        from mlx_lm.tuner.trainer import TrainingArgs, train

        import contextlib
        import io

        from multiopt_lab.integrations.mlx_lm import LabCallback

        model = mlx_lm_models.build("qwen3")
        args = TrainingArgs(batch_size=2, iters=2, steps_per_report=1, adapter_file=str(tmp_path / "a.safetensors"))
        data = mlx_lm_models.token_dataset(4)
        for warn, expected in ((True, 1), (False, 0)):
            optimizer = muon_adamw(['glob("*attn*")'])
            with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("always")
                callback = LabCallback(optimizer, model, args=args, warn_findings=warn)
                train(model, optimizer, data, args=args, training_callback=callback,
                      iterate_batches=callback.iterate_batches)
            found = finding_warnings(caught)
            assert len(found) == expected
            assert all(f.paths == QWEN3_NORMS_IN_ATTENTION for f in found)

    @pytest.mark.parametrize("where", ["train", "LabCallback", "MultiOptimizer"])
    def test_the_argument_is_a_bool(self, where):
        with pytest.raises(TypeError, match="warn_findings must be True or False, found str .no."):
            if where == "train":
                digits_run(optim.SGD(0.1), warn_findings="no")
            elif where == "LabCallback":
                from multiopt_lab.integrations.mlx_lm import LabCallback
                LabCallback(optim.SGD(0.1), nn.Linear(2, 2), warn_findings="no")
            else:
                mol.MultiOptimizer([optim.SGD(0.1)], warn_findings="no")
