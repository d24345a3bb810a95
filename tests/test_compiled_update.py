# Tests the private module multiopt_lab._src.optimizer.compiled_update's own unit.
"""MultiOptimizer(compile=True): same results as eager, compiled once, recompiled when it must."""

import warnings
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_flatten, tree_map

from models import transformer
from multiopt_lab import MultiOptimizer, compile_step
from multiopt_lab._src.optimizer.compiled_update import captured_constants

COMBOS = {
    "sgd_adamw": lambda: [optim.SGD(0.05, momentum=0.9, weight_decay=1e-3), optim.AdamW(1e-2)],
    "muon_adamw": lambda: [optim.Muon(0.02), optim.AdamW(1e-2)],
    "adafactor_lion": lambda: [optim.Adafactor(), optim.Lion(1e-3)],
}
RULES = ['ndim == 2 and not glob("*embed*")']


def twin_models(depth=2):
    first, second = transformer(depth=depth), transformer(depth=depth)
    second.update(tree_map(mx.array, first.parameters()))
    mx.eval(first.parameters(), second.parameters())
    return first, second


def gradients(model, seed):
    mx.random.seed(seed)
    return tree_map(lambda p: mx.random.normal(p.shape, p.dtype) * 0.1,
                    model.trainable_parameters())


def assert_close(a, b, rtol=1e-5, atol=1e-6):
    flat_a, flat_b = dict(tree_flatten(a)), dict(tree_flatten(b))
    assert flat_a.keys() == flat_b.keys()
    for key in flat_a:
        x, y = flat_a[key], flat_b[key]
        assert x.shape == y.shape and x.dtype == y.dtype, key
        assert mx.allclose(x, y, rtol=rtol, atol=atol).item(), f"{key} differs"


def run_both(eager, compiled, eager_model, compiled_model, steps, first_seed=0):
    for seed in range(first_seed, first_seed + steps):
        grads = gradients(eager_model, seed)
        eager.update(eager_model, grads)
        compiled.update(compiled_model, grads)
        mx.eval(eager_model.parameters(), eager.state, compiled_model.parameters(), compiled.state)


def pair(combo="sgd_adamw", **kwargs):
    eager_model, compiled_model = twin_models()
    eager = MultiOptimizer(COMBOS[combo](), RULES, **kwargs)
    compiled = MultiOptimizer(COMBOS[combo](), RULES, compile=True, **kwargs)
    return eager_model, compiled_model, eager, compiled


class TestResults:
    @pytest.mark.parametrize("combo", list(COMBOS))
    def test_parameters_and_state_match_the_eager_update(self, combo):
        eager_model, compiled_model, eager, compiled = pair(combo)
        run_both(eager, compiled, eager_model, compiled_model, steps=4)
        assert compiled.compilations == 1
        assert_close(eager_model.parameters(), compiled_model.parameters())
        assert_close(eager.state, compiled.state)

    def test_default_stays_uncompiled(self):
        opt = MultiOptimizer(COMBOS["sgd_adamw"](), RULES)
        model = transformer()
        opt.update(model, gradients(model, 0))
        assert opt.compile is False and opt.compilations == 0

    def test_compile_must_be_a_bool(self):
        with pytest.raises(TypeError, match="compile must be True or False, found str 'yes'"):
            MultiOptimizer([optim.SGD(0.1)], compile="yes")
        opt = MultiOptimizer([optim.SGD(0.1)])
        with pytest.raises(TypeError, match="found int 1"):
            opt.compile = 1
        assert opt.compile is False

    def test_a_schedule_runs_inside_the_compiled_update(self):
        def optimizers():
            return [optim.SGD(optim.cosine_decay(0.1, 10), momentum=0.9), optim.AdamW(1e-2)]

        eager_model, compiled_model = twin_models()
        eager = MultiOptimizer(optimizers(), RULES)
        compiled = MultiOptimizer(optimizers(), RULES, compile=True)
        run_both(eager, compiled, eager_model, compiled_model, steps=5)
        assert compiled.compilations == 1
        assert compiled.learning_rates["sgd"] == pytest.approx(eager.learning_rates["sgd"])
        assert compiled.learning_rates["sgd"] < 0.1
        assert_close(eager_model.parameters(), compiled_model.parameters())

    def test_optimizer_with_its_own_apply_gradients(self):
        calls = []  # not an attribute: a changing Python number on it would compile again

        class ClippedSGD(optim.SGD):
            def apply_gradients(self, gradients, parameters):
                calls.append(self)  # Python runs: an eager step, or the trace of a compiled one
                gradients, _ = optim.clip_grad_norm(gradients, 0.05)
                return super().apply_gradients(gradients, parameters)

        eager_model, compiled_model = twin_models()
        eager = MultiOptimizer([ClippedSGD(0.1, momentum=0.9), optim.Lion(1e-3)], RULES)
        compiled = MultiOptimizer([ClippedSGD(0.1, momentum=0.9), optim.Lion(1e-3)], RULES,
                                  compile=True)
        run_both(eager, compiled, eager_model, compiled_model, steps=4)
        # Its own code ran on every eager step; compiled: the first step (eager, it creates
        # its state there), the trace of the second, then replays that run no Python.
        assert calls.count(eager.optimizers[0]) == 4 and calls.count(compiled.optimizers[0]) == 2
        assert compiled.compilations == 1
        assert_close(eager_model.parameters(), compiled_model.parameters())
        assert_close(eager.state, compiled.state)


class TestCompilations:
    def test_two_thousand_steps_compile_once_and_memory_stays_flat(self):
        model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        opt = MultiOptimizer([optim.SGD(0.01, momentum=0.9), optim.AdamW(1e-3)], ["ndim == 2"],
                             compile=True)
        grads = tree_map(lambda p: mx.full(p.shape, 1e-3), model.trainable_parameters())
        for step in range(2000):
            opt.update(model, grads)
            mx.eval(model.parameters(), opt.state)
            if step == 100:
                memory = mx.get_active_memory()
        assert opt.compilations == 1 and opt.step.item() == 2000
        assert mx.get_active_memory() <= memory + 4096

    def test_a_learning_rate_set_as_an_array_needs_no_compilation(self):
        eager_model, compiled_model, eager, compiled = pair()
        run_both(eager, compiled, eager_model, compiled_model, steps=2)
        for opt in (eager, compiled):
            opt.learning_rate = 0.2                 # MLX stores mx.array(0.2)
            opt.learning_rates = {"adamw": 3e-3}
        run_both(eager, compiled, eager_model, compiled_model, steps=2, first_seed=2)
        assert compiled.compilations == 1
        assert compiled.learning_rates == pytest.approx({"sgd": 0.2, "adamw": 3e-3})
        assert_close(eager_model.parameters(), compiled_model.parameters())

    @pytest.mark.parametrize("change", ["float learning rate", "momentum", "weight decay"])
    def test_a_python_constant_change_compiles_again(self, change):
        class FloatRateSGD(optim.Optimizer):
            """Keeps its learning rate as a Python float: a trace bakes it in."""

            def __init__(self, rate):
                super().__init__()
                self.rate = rate

            def init_single(self, parameter, state):
                pass

            def apply_single(self, gradient, parameter, state):
                return parameter - self.rate * gradient

        eager_model, compiled_model = twin_models()
        eager, compiled = (
            MultiOptimizer([optim.SGD(0.05, momentum=0.9), FloatRateSGD(0.1), optim.AdamW(1e-2)],
                           RULES + ["ndim == 1"], compile=on) for on in (False, True))
        run_both(eager, compiled, eager_model, compiled_model, steps=2)
        for opt in (eager, compiled):
            if change == "float learning rate":
                opt.optimizers[1].rate = 0.3
            elif change == "momentum":
                opt.optimizers[0].momentum = 0.5
            else:
                opt.optimizers[2].weight_decay = 0.1
        run_both(eager, compiled, eager_model, compiled_model, steps=2, first_seed=2)
        assert compiled.compilations == 2
        assert_close(eager_model.parameters(), compiled_model.parameters())

    def test_init_state_repartition_and_structure_compile_again(self):
        eager_model, compiled_model, eager, compiled = pair()
        run_both(eager, compiled, eager_model, compiled_model, steps=2)
        assert compiled.compilations == 1
        for opt, model in ((eager, eager_model), (compiled, compiled_model)):
            opt.repartition(["ndim == 2"], model)
        run_both(eager, compiled, eager_model, compiled_model, steps=2, first_seed=2)
        assert compiled.compilations == 2
        saved = tree_map(lambda x: x, compiled.state)
        compiled.state = saved
        eager.state = tree_map(lambda x: x, eager.state)
        run_both(eager, compiled, eager_model, compiled_model, steps=1, first_seed=4)
        assert compiled.compilations == 3
        compiled.init(compiled_model.trainable_parameters())
        eager.init(eager_model.trainable_parameters())
        run_both(eager, compiled, eager_model, compiled_model, steps=1, first_seed=5)
        assert compiled.compilations == 4
        assert_close(eager_model.parameters(), compiled_model.parameters())
        assert_close(eager.state, compiled.state)
        fewer = gradients(compiled_model, 6)
        del fewer["embed"]                          # a frozen embedding: another structure
        compiled.update(compiled_model, fewer)
        assert compiled.compilations == 5

    def test_captured_constants_see_numbers_not_arrays(self):
        adam = optim.Adam(1e-3)
        before = captured_constants(adam)
        adam.learning_rate = 0.5
        assert captured_constants(adam) == before
        adam.betas = [0.8, 0.9]
        assert captured_constants(adam) != before


class TestMetrics:
    def test_metrics_come_out_of_the_compiled_update(self):
        eager_model, compiled_model, eager, compiled = pair("muon_adamw", metrics_every=3)
        seen = []
        for seed in range(7):
            run_both(eager, compiled, eager_model, compiled_model, steps=1, first_seed=seed)
            seen.append((eager.metrics_step, compiled.metrics_step))
            for label in ("muon", "adamw", "total"):
                for name, value in eager.metrics[label].items():
                    assert compiled.metrics[label][name] == pytest.approx(value, rel=1e-4,
                                                                          nan_ok=True)
        assert seen == [(s, s) for s in (1, 1, 1, 4, 4, 4, 7)]
        assert compiled.compilations == 2  # one variant that records, one that does not


class TestUnderOuterCompile:
    @pytest.mark.parametrize("eager_first", [True, False], ids=["eager-then-traced",
                                                                "traced-then-eager"])
    def test_a_whole_compiled_step_keeps_working(self, eager_first):
        eager_model, compiled_model, eager, compiled = pair()
        compiled.init(compiled_model.trainable_parameters())
        state = [compiled_model.state, compiled.state]

        @partial(mx.compile, inputs=state, outputs=state)
        def whole_step(grads):
            compiled.update(compiled_model, grads)

        for seed in range(4):
            grads = gradients(eager_model, seed)
            eager.update(eager_model, grads)
            if (seed < 2) == eager_first:
                compiled.update(compiled_model, grads)
            else:
                whole_step(grads)
            mx.eval(eager_model.parameters(), eager.state, state)
        assert compiled.compilations == 1  # the outer trace did not nest one
        assert_close(eager_model.parameters(), compiled_model.parameters())
        assert_close(eager.state, compiled.state)

    def test_compile_step_with_the_switch_on(self):
        eager_model, compiled_model, eager, compiled = pair()
        loss_and_grad = nn.value_and_grad(compiled_model, lambda m, x: m(x).sum())
        tokens = mx.array([[1, 2, 3, 4]])

        def step():
            loss, grads = loss_and_grad(compiled_model, tokens)
            compiled.update(compiled_model, grads)
            return loss

        stepper = compile_step(step, compiled_model, compiled)
        eager_grad = nn.value_and_grad(eager_model, lambda m, x: m(x).sum())
        for _ in range(3):
            mx.eval(stepper(), compiled_model.state, compiled.state)
            eager.update(eager_model, eager_grad(eager_model, tokens)[1])
            mx.eval(eager_model.parameters(), eager.state)
        assert stepper.traces == 1 and compiled.compilations == 0
        assert_close(eager_model.parameters(), compiled_model.parameters(), rtol=1e-4, atol=1e-5)


def test_an_update_that_cannot_be_traced_runs_eagerly_with_a_warning():
    def python_schedule(step):
        return mx.array(0.1 if step.item() < 2 else 0.01)  # .item() cannot be traced

    eager_model, compiled_model = twin_models()
    eager = MultiOptimizer([optim.SGD(python_schedule, momentum=0.9), optim.AdamW(1e-2)], RULES)
    compiled = MultiOptimizer([optim.SGD(python_schedule, momentum=0.9), optim.AdamW(1e-2)],
                              RULES, compile=True)
    with pytest.warns(UserWarning, match="could not compile this optimizer update"):
        run_both(eager, compiled, eager_model, compiled_model, steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_both(eager, compiled, eager_model, compiled_model, steps=3, first_seed=1)
    assert compiled.learning_rates["sgd"] == pytest.approx(0.01)
    assert_close(eager_model.parameters(), compiled_model.parameters())
    assert_close(eager.state, compiled.state)


def test_a_constant_that_changes_every_step_falls_back_to_eager():
    eager_model, compiled_model = nn.Linear(3, 2), nn.Linear(3, 2)
    compiled_model.update(tree_map(mx.array, eager_model.parameters()))
    eager, compiled = (MultiOptimizer([optim.SGD(0.1), optim.AdamW(1e-2)], ["ndim == 2"],
                                      compile=on) for on in (False, True))
    with pytest.warns(UserWarning, match="changed 8 times for the same parameters"):
        for step in range(12):
            for opt in (eager, compiled):
                opt.optimizers[1].eps = 1e-8 * (step + 1)   # a Python float, new every step
            run_both(eager, compiled, eager_model, compiled_model, steps=1, first_seed=step)
    assert compiled.compilations == 8 and compiled.step.item() == 12
    assert_close(eager_model.parameters(), compiled_model.parameters())


def test_a_single_optimizer_bfloat16_and_parameterless_layers():
    def model():
        mx.random.seed(5)
        layers = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.LayerNorm(8), nn.Linear(8, 2))
        layers.layers[2].set_dtype(mx.bfloat16)
        return layers

    eager_model, compiled_model = model(), model()
    eager, compiled = (MultiOptimizer([optim.AdamW(1e-2)], compile=on) for on in (False, True))
    run_both(eager, compiled, eager_model, compiled_model, steps=3)
    assert compiled_model.layers[2].weight.dtype == mx.bfloat16 and compiled.compilations == 1
    assert compiled.state["states"][0]["layers"][1] == {}   # the ReLU's empty dict, as in MLX
    assert_close(eager_model.parameters(), compiled_model.parameters(), rtol=1e-2, atol=1e-3)
    assert_close(eager.state, compiled.state, rtol=1e-2, atol=1e-3)


def test_a_nested_multioptimizer_compiles_once():
    def optimizers():
        # The outer rule leaves the inner one no vector: its rule is dead, a finding this test
        # is not about (it checks that nothing warns about compiling).
        inner = MultiOptimizer([optim.SGD(0.05, momentum=0.9), optim.Adam(1e-2)], ["ndim == 1"],
                               warn_findings=False)
        return [inner, optim.AdamW(1e-2)]

    eager_model, compiled_model = twin_models()
    eager = MultiOptimizer(optimizers(), RULES)
    compiled = MultiOptimizer(optimizers(), RULES, compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_both(eager, compiled, eager_model, compiled_model, steps=12)
    assert compiled.compilations == 1 and compiled.optimizers[0].compilations == 0
    assert_close(eager_model.parameters(), compiled_model.parameters())
    assert_close(eager.state, compiled.state)


def test_a_loaded_checkpoint_compiles_again_and_resumes_like_eager(tmp_path):
    from multiopt_lab import load_state, save_state

    eager_model, compiled_model, eager, compiled = pair()
    run_both(eager, compiled, eager_model, compiled_model, steps=2)
    save_state(tmp_path / "opt.safetensors", compiled)
    run_both(eager, compiled, eager_model, compiled_model, steps=2, first_seed=2)
    load_state(tmp_path / "opt.safetensors", compiled, parameters=compiled_model)
    load_state(tmp_path / "opt.safetensors", eager, parameters=eager_model)
    assert compiled.step.item() == 2
    run_both(eager, compiled, eager_model, compiled_model, steps=2, first_seed=4)
    assert compiled.compilations == 2 and compiled.step.item() == 4
    assert_close(eager_model.parameters(), compiled_model.parameters())
    assert_close(eager.state, compiled.state)
