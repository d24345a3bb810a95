# Tests the private modules' own units: multiopt_lab._src.optimizer_file.as_data,
#   multiopt_lab._src.optimizer_file.classes, multiopt_lab._src.optimizer_file.schedules.
"""save_optimizer / load_optimizer: a whole MultiOptimizer in a rule file, rebuilt to the last bit."""

from __future__ import annotations

import json
import sys
import tomllib

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_flatten

import multiopt_lab as mol
from multiopt_lab import RuleFileError, load_rules, recipes, save_rules
from multiopt_lab.__main__ import main
from multiopt_lab._src.optimizer_file.as_data import optimizer_from_data, optimizer_to_data
from multiopt_lab._src.optimizer_file.classes import MLX_CLASSES
from multiopt_lab._src.optimizer_file.schedules import (
    SCHEDULES, schedule_from_data, schedule_to_data,
)
from multiopt_lab.examples import TinyGPT, TinyMoE

RULES = ['within("Block") and module == "Linear" and ndim == 2', 'module == "Embedding"']
LABELS = ["muon", "embed", "rest"]


def warmup_cosine():
    return optim.join_schedules([optim.linear_schedule(0.0, 1e-2, 3),
                                 optim.cosine_decay(1e-2, 20, 1e-4)], [3])


def make_model():
    mx.random.seed(0)
    return TinyGPT(16, dims=16, layers=2, heads=2, max_length=8)


def make_optimizer():
    return mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(warmup_cosine(), weight_decay=0.1),
                               optim.SGD(0.1, momentum=0.9, nesterov=True)], RULES, labels=LABELS)


def train_both(pairs, steps=6):
    """Step every ``(model, optimizer)`` on the same data; yield after each step."""
    tokens = mx.array([[1, 2, 3, 4, 5, 6]])

    def loss(model):
        return nn.losses.cross_entropy(model(tokens[:, :-1]), tokens[:, 1:]).mean()

    for _ in range(steps):
        for model, optimizer in pairs:
            _, grads = nn.value_and_grad(model, loss)(model)
            optimizer.update(model, grads)
            mx.eval(model.parameters(), optimizer.state)
        yield


def assert_same_bits(tree_a, tree_b):
    flat_a, flat_b = dict(tree_flatten(tree_a)), dict(tree_flatten(tree_b))
    assert flat_a.keys() == flat_b.keys()
    for path, value in flat_a.items():
        other = flat_b[path]
        assert value.dtype == other.dtype and mx.array_equal(value, other).item(), path


class TestRoundTrip:
    @pytest.mark.parametrize("name", ["rules.toml", "rules.json"])
    def test_updates_equal_the_original_to_the_last_bit(self, tmp_path, name):
        model, original = make_model(), make_optimizer()
        mol.save_optimizer(tmp_path / name, original)
        twin = make_model()
        loaded = mol.load_optimizer(tmp_path / name, twin)
        assert loaded.labels == original.labels
        assert [r.text for r in loaded.filters] == RULES
        assert [type(o) for o in loaded.optimizers] == [optim.Muon, optim.AdamW, optim.SGD]
        rates = []
        for _ in train_both([(model, original), (twin, loaded)]):
            assert_same_bits(model.parameters(), twin.parameters())
            assert_same_bits(original.state, loaded.state)
            assert loaded.learning_rates == original.learning_rates
            rates.append(loaded.learning_rates["embed"])
        assert rates[0] < rates[2] and rates[3] > rates[5] > 0  # warm-up, then cosine decay

    def test_the_file_reads_as_data(self, tmp_path):
        mol.save_optimizer(tmp_path / "r.toml", make_optimizer())
        mol.save_optimizer(tmp_path / "r.json", make_optimizer())
        toml = tomllib.loads((tmp_path / "r.toml").read_text())
        assert toml == json.loads((tmp_path / "r.json").read_text())
        embed = toml["group"][1]["optimizer"]
        assert embed["class"] == "AdamW" and embed["weight_decay"] == 0.1
        assert embed["learning_rate"] == {
            "schedule": "join_schedules", "boundaries": [3], "schedules": [
                {"schedule": "linear_schedule", "init": 0.0, "end": 0.01, "steps": 3},
                {"schedule": "cosine_decay", "init": 0.01, "decay_steps": 20, "end": 0.0001}]}

    def test_load_rules_and_the_cli_read_a_file_with_optimizers(self, tmp_path, monkeypatch, capsys):
        mol.save_optimizer(tmp_path / "r.toml", make_optimizer())
        labels, rules = load_rules(tmp_path / "r.toml")
        assert labels == LABELS and [r.text for r in rules] == RULES
        (tmp_path / "gpt_factory.py").write_text(
            "from multiopt_lab.examples import TinyGPT\n"
            "def make():\n    return TinyGPT(16, dims=16, layers=2, heads=2, max_length=8)\n")
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "path", list(sys.path))
        assert main(["check", "r.toml", "--model", "gpt_factory:make"]) == 0
        assert "check passed" in capsys.readouterr().out

    def test_the_cli_fails_on_an_optimizer_it_cannot_build(self, tmp_path, monkeypatch, capsys):
        mol.save_optimizer(tmp_path / "r.toml", make_optimizer())
        text = (tmp_path / "r.toml").read_text().replace('class = "SGD"', 'class = "SDG"')
        (tmp_path / "r.toml").write_text(text)
        (tmp_path / "gpt_factory2.py").write_text(
            "from multiopt_lab.examples import TinyGPT\n"
            "def make():\n    return TinyGPT(16, dims=16, layers=2, heads=2, max_length=8)\n")
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "path", list(sys.path))
        assert main(["check", "r.toml", "--model", "gpt_factory2:make"]) == 2
        err = capsys.readouterr().err
        assert "r.toml: group 'rest': unknown optimizer class 'SDG'" in err and "register" in err

    @pytest.mark.parametrize("name", sorted(MLX_CLASSES))
    def test_every_mlx_optimizer_class_round_trips(self, name):
        cls = MLX_CLASSES[name]
        original = cls() if name == "Adafactor" else cls(learning_rate=0.05)
        data = optimizer_to_data(original)
        rebuilt = optimizer_from_data(json.loads(json.dumps(data)))
        assert type(rebuilt) is cls and optimizer_to_data(rebuilt) == data
        weights = {"w": mx.random.normal((4, 3), key=mx.random.key(1))}
        grads = {"w": mx.random.normal((4, 3), key=mx.random.key(2))}
        for _ in range(3):
            a, b = original.apply_gradients(grads, weights), rebuilt.apply_gradients(grads, weights)
            assert mx.array_equal(a["w"], b["w"]).item(), name

    def test_a_float32_learning_rate_is_written_short_and_rebuilt_exactly(self):
        for rate in (0.1, 3e-4, 0.123456789, 1e-38, 7):
            data = optimizer_to_data(optim.SGD(rate))
            assert mx.array_equal(optimizer_from_data(data).learning_rate, optim.SGD(rate).learning_rate).item()
        assert optimizer_to_data(optim.SGD(0.1))["learning_rate"] == 0.1

    def test_a_muon_recipe_on_experts_keeps_its_stacked_muon(self, tmp_path):
        mx.random.seed(0)
        model = TinyMoE(16, dims=8, layers=1, experts=2)
        mol.save_optimizer(tmp_path / "moe.toml", recipes.muon(model))
        loaded = mol.load_optimizer(tmp_path / "moe.toml", model)
        assert [type(o) for o in loaded.optimizers] == [recipes.StackedMuon, optim.AdamW]
        assert 'class = "StackedMuon"' in (tmp_path / "moe.toml").read_text()

    def test_a_layerwise_recipe_on_a_schedule_round_trips(self, tmp_path):
        model = make_model()
        original = recipes.layerwise_lr_decay(model, optim.AdamW(optim.cosine_decay(1e-3, 50)), decay=0.5)
        mol.save_optimizer(tmp_path / "lw.toml", original)
        assert 'schedule = "scaled"' in (tmp_path / "lw.toml").read_text()
        twin = make_model()
        loaded = mol.load_optimizer(tmp_path / "lw.toml", twin)
        for _ in train_both([(model, original), (twin, loaded)], steps=3):
            assert_same_bits(model.parameters(), twin.parameters())
            assert loaded.learning_rates == original.learning_rates

    def test_run_options_are_passed_to_load_optimizer(self, tmp_path):
        mol.save_optimizer(tmp_path / "r.toml", make_optimizer())
        loaded = mol.load_optimizer(tmp_path / "r.toml", make_model(), metrics_every=2, skip_nonfinite=True)
        assert loaded.metrics_every == 2 and loaded.skip_nonfinite


class TestSchedules:
    """The adapter that reads MLX's schedule closures: fails by name when MLX changes them."""

    MADE = {
        "cosine_decay": (lambda: optim.cosine_decay(1e-3, 100, 1e-5),
                         {"init": 1e-3, "decay_steps": 100, "end": 1e-5}),
        "exponential_decay": (lambda: optim.exponential_decay(0.1, 0.9),
                              {"init": 0.1, "decay_rate": 0.9}),
        "step_decay": (lambda: optim.step_decay(0.1, 0.5, 10),
                       {"init": 0.1, "decay_rate": 0.5, "step_size": 10}),
        "linear_schedule": (lambda: optim.linear_schedule(0.0, 1e-3, 10),
                            {"init": 0.0, "end": 1e-3, "steps": 10}),
        "join_schedules": (lambda: optim.join_schedules([optim.linear_schedule(0.0, 1.0, 5),
                                                         optim.exponential_decay(1.0, 0.5)], [5]),
                           {"schedules": [{"schedule": "linear_schedule", "init": 0.0, "end": 1.0, "steps": 5},
                                          {"schedule": "exponential_decay", "init": 1.0, "decay_rate": 0.5}],
                            "boundaries": [5]}),
    }

    def test_every_mlx_schedule_is_covered(self):
        assert set(SCHEDULES) == set(self.MADE)

    @pytest.mark.parametrize("name", sorted(MADE))
    def test_mlx_schedule_is_described_and_rebuilt_to_the_last_bit(self, name):
        make, arguments = self.MADE[name]
        data = schedule_to_data(make())
        assert data == {"schedule": name, **arguments}
        rebuilt = schedule_from_data(data)
        for step in range(0, 30, 3):
            step = mx.array(step, mx.uint64)
            assert mx.array_equal(mx.array(rebuilt(step)), mx.array(make()(step))).item(), (name, step)

    @pytest.mark.parametrize("data, message", [
        ({"schedule": "warmup"}, "unknown schedule 'warmup'; expected one of cosine_decay"),
        ({"schedule": "cosine_decay", "init": 1e-3}, "missing 'decay_steps'"),
        ({"schedule": "cosine_decay", "init": 1e-3, "decay_steps": 0}, "refused its arguments: ValueError: decay_steps"),
        ({"schedule": "cosine_decay", "init": 1e-3, "decay_steps": 10, "steps": 4}, r"unknown arguments \['steps'\]"),
        ({"schedule": "scaled", "factor": "x", "base": {"schedule": "exponential_decay", "init": 1.0, "decay_rate": 0.5}},
         "expected a finite number 'factor'"),
        ({"init": 1.0}, "expected a table with a string 'schedule'"),
        ({"schedule": "join_schedules", "schedules": [{"schedule": "os.system"}], "boundaries": []},
         r"'schedules'\[0\]: unknown schedule 'os.system'"),
    ])
    def test_bad_schedule_tables_are_refused(self, data, message):
        with pytest.raises(ValueError, match=message):
            schedule_from_data(data, "r.toml: group 'a': its learning_rate")


class CountsItsSteps(optim.SGD):
    """An SGD subclass: not MLX's, so a file can name it only once registered."""


class ChangesItsArguments(optim.SGD):
    def __init__(self, learning_rate, momentum=0.0):
        super().__init__(learning_rate, momentum=momentum * 2)  # keeps another value than given


class TestRegistration:
    def test_a_registered_class_round_trips(self, tmp_path):
        mol.register_optimizer(CountsItsSteps, name="tests.CountsItsSteps")
        mol.save_optimizer(tmp_path / "r.toml", mol.MultiOptimizer([CountsItsSteps(0.1)], labels=["all"]))
        assert 'class = "tests.CountsItsSteps"' in (tmp_path / "r.toml").read_text()
        assert type(mol.load_optimizer(tmp_path / "r.toml", nn.Linear(2, 2)).optimizers[0]) is CountsItsSteps

    def test_registering_works_as_a_decorator_and_again_after_a_notebook_rerun(self):
        for _ in range(2):  # the same cell run twice defines two classes of one name
            @mol.register_optimizer
            class Rerun(optim.Adam):
                pass
            assert optimizer_from_data({"class": "Rerun", "learning_rate": 0.1}).__class__ is Rerun

    @pytest.mark.parametrize("cls, name, error, message", [
        (CountsItsSteps, "AdamW", ValueError, "'AdamW' names mlx.optimizers.AdamW in rule files"),
        (CountsItsSteps, "not a name", ValueError, "expected a Python identifier"),
        (int, None, TypeError, "expects an optimizer class"),
        (mol.MultiOptimizer, None, TypeError, "multi-group optimizer"),
    ])
    def test_bad_registrations(self, cls, name, error, message):
        with pytest.raises(error, match=message):
            mol.register_optimizer(cls, name=name)

    def test_a_name_taken_by_another_class_is_refused(self):
        class First(optim.SGD):
            pass

        class Second(optim.SGD):
            pass

        mol.register_optimizer(First, name="tests.taken")
        with pytest.raises(ValueError, match="'tests.taken' names .*First already"):
            mol.register_optimizer(Second, name="tests.taken")


class TestErrors:
    """Each refusal names the group, says what was found and how to fix it; nothing is written."""

    @pytest.mark.parametrize("make, message", [
        (lambda: mol.MultiOptimizer([optim.SGD(0.1), optim.Adam(1e-3)], [lambda path, array: True],
                                    labels=["picked", "rest"]),
         r"cannot save group 'picked': its rule is a Python callable .* Rewrite it as an expression"),
        (lambda: mol.MultiOptimizer([optim.SGD(0.1), optim.Adam(lambda step: 1e-3 * step)], ["ndim == 2"],
                                    labels=["w", "rest"]),
         r"cannot save group 'rest': its learning_rate is a schedule a file cannot hold: the function "
         r".*<lambda> .*is not one of MLX's schedules, .*optim.cosine_decay"),
        (lambda: mol.MultiOptimizer([optim.SGD(0.1), CountsItsStepsUnregistered(0.1)], ["ndim == 2"],
                                    labels=["w", "rest"]),
         r"cannot save group 'rest': its optimizer is a .*CountsItsStepsUnregistered \(a subclass of SGD\), "
         r"which a file cannot name; register it first: multiopt_lab.register_optimizer"),
        (lambda: mol.MultiOptimizer([optim.SGD(mx.array(0.1, mx.bfloat16))], labels=["all"]),
         "cannot save group 'all': its learning_rate is a bfloat16 array"),
        (lambda: mol.MultiOptimizer([optim.SGD(0.1, momentum=mx.array(0.9))], labels=["all"]),
         "cannot save group 'all': its momentum is an mx.array"),
        (lambda: mol.MultiOptimizer([optim.SGD(0.1, weight_decay=float("nan"))], labels=["all"]),
         "cannot save group 'all': its weight_decay is nan; a file holds finite numbers"),
        (lambda: mol.MultiOptimizer([ChangesItsArgumentsRegistered(0.1, momentum=0.3)], labels=["all"]),
         "cannot save group 'all': ChangesItsArguments built from its own arguments differs in momentum"),
    ])
    def test_what_cannot_be_saved(self, tmp_path, make, message):
        target = tmp_path / "r.toml"
        target.write_text("old")
        with pytest.raises(RuleFileError, match=message):
            mol.save_optimizer(target, make())
        assert target.read_text() == "old"

    @pytest.mark.parametrize("optimizer, message", [
        (optim.MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], [lambda p, a: True]),
         "got mlx.optimizers.MultiOptimizer, whose filters are Python functions"),
        (optim.AdamW(1e-3), r"got one AdamW. Wrap it: MultiOptimizer\(\[optimizer\]\)"),
    ])
    def test_not_a_multiopt_lab_optimizer(self, tmp_path, optimizer, message):
        with pytest.raises(TypeError, match=message):
            mol.save_optimizer(tmp_path / "r.toml", optimizer)

    def test_a_file_without_optimizers(self, tmp_path):
        save_rules(tmp_path / "r.toml", ["muon", "adamw"], ["ndim == 2"])
        with pytest.raises(RuleFileError, match=r"r.toml: 2 of 2 groups have no optimizer \('muon', 'adamw'\); "
                                                r"load_optimizer needs one per group .* load_rules reads the rules alone"):
            mol.load_optimizer(tmp_path / "r.toml", nn.Linear(2, 2))

    @pytest.mark.parametrize("table, message", [
        ('class = "os.system"', r"group 'all': unknown optimizer class 'os.system'; expected one of mlx.optimizers'"),
        ('class = "Optimizer"\nlearning_rate = 0.1', "unknown optimizer class 'Optimizer'"),
        ('class = "MultiOptimizer"', "unknown optimizer class 'MultiOptimizer'"),
        ('class = "tree_map"', "unknown optimizer class 'tree_map'"),
        ('class = "SGD"\nlearning_rat = 0.1', r"SGD takes no argument 'learning_rat'; did you mean 'learning_rate'\?"),
        ('class = "AdamW"\nweight_decay = 0.1', "AdamW needs learning_rate"),
        ('class = "Lion"\nlearning_rate = 0.1\nbetas = [1.5, 0.9]', "Lion refused its arguments: ValueError: Lion beta1"),
        ('class = "SGD"\nlearning_rate = "fast"', "SGD refused its arguments: ValueError: Invalid type str"),
        ('class = "SGD"\nlearning_rate = { schedule = "cosine_decay", init = 0.1 }',
         r"group 'all': its learning_rate \(cosine_decay\): missing 'decay_steps'"),
    ])
    def test_bad_optimizer_tables_name_the_file_and_group(self, tmp_path, table, message):
        (tmp_path / "r.toml").write_text(f'[[group]]\nlabel = "all"\n[group.optimizer]\n{table}\n')
        with pytest.raises(RuleFileError, match=message) as info:
            mol.load_optimizer(tmp_path / "r.toml", nn.Linear(2, 2))
        assert str(info.value).startswith(f"{tmp_path / 'r.toml'}: group 'all'")

    @pytest.mark.parametrize("text, message", [
        ('[[group]]\nlabel = "all"\noptimizer = "AdamW(lr=0.001)"',
         r"expected its 'optimizer' to be a table with a string 'class'"),
        ('{"group": [{"label": "all", "optimizer": {"learning_rate": 0.1}}]}',
         r"expected its 'optimizer' to be a table with a string 'class'"),
    ])
    def test_load_rules_checks_the_shape_of_an_optimizer(self, tmp_path, text, message):
        path = tmp_path / ("r.json" if text.startswith("{") else "r.toml")
        path.write_text(text)
        with pytest.raises(RuleFileError, match=message):
            load_rules(path)

    def test_load_optimizer_wants_a_model(self, tmp_path):
        mol.save_optimizer(tmp_path / "r.toml", make_optimizer())
        with pytest.raises(TypeError, match=r"expects the model \(an nn.Module\)"):
            mol.load_optimizer(tmp_path / "r.toml", "model")


class CountsItsStepsUnregistered(optim.SGD):
    pass


ChangesItsArgumentsRegistered = mol.register_optimizer(ChangesItsArguments, name="tests.ChangesItsArguments")


def test_a_loaded_file_trains_inside_mlx_lm_like_the_original(tmp_path):
    """As a user would: mlx-lm's Mixtral, the muon recipe with a scheduled AdamW, saved, loaded,
    and both trained by mlx-lm's own train(): the same parameters to the last bit."""
    pytest.importorskip("mlx_lm")
    import contextlib
    import io

    import numpy as np
    from mlx_lm.tuner.trainer import TrainingArgs, train

    from mlx_lm_models import build, token_dataset

    def run(model, optimizer):
        args = TrainingArgs(batch_size=4, iters=5, steps_per_report=5, steps_per_eval=10_000,
                            steps_per_save=10_000, adapter_file=str(tmp_path / "adapters.safetensors"))
        np.random.seed(0)
        mx.random.seed(0)
        with contextlib.redirect_stdout(io.StringIO()):
            train(model, optimizer, token_dataset(), args=args)
        mx.eval(model.parameters(), optimizer.state)

    model = build("mixtral")
    original = recipes.muon(model, adamw=optim.AdamW(optim.cosine_decay(1e-3, 5), weight_decay=0.1))
    mol.save_optimizer(tmp_path / "mixtral.toml", original)
    twin = build("mixtral")
    loaded = mol.load_optimizer(tmp_path / "mixtral.toml", twin)
    assert [type(o) for o in loaded.optimizers] == [recipes.StackedMuon, optim.AdamW]
    run(model, original)
    run(twin, loaded)
    assert_same_bits(model.trainable_parameters(), twin.trainable_parameters())
    assert loaded.learning_rates == original.learning_rates
