"""Inside mlx-lm's own trainer (``mlx_lm.tuner.trainer.train``), on its own model code.

Dense (Llama, Qwen3, Gemma 3, Phi-3) and mixture-of-experts (Mixtral,
Qwen3-MoE, DeepSeek-V3) models from tiny configs, full fine-tuning, LoRA and
4-bit QLoRA: the drop-in gives MLX's ``MultiOptimizer``'s bits inside the
compiled step mlx-lm builds once; a repartition from a callback changes the
routing from the next step on with the step counters advancing; the
callback records, applies the editor's requests and saves a state that
resumes the run bit for bit.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

pytest.importorskip("mlx_lm")

from mlx_lm.tuner.trainer import TrainingArgs, TrainingCallback, train  # noqa: E402

from mlx_lm_models import DENSE, MOE, build, lora, qlora, token_dataset  # noqa: E402
from multiopt_lab import MultiOptimizer  # noqa: E402
from multiopt_lab.integrations.mlx_lm import LabCallback, resume, state_file_for  # noqa: E402
from trees import assert_identical

MATRICES = "ndim >= 2"  # expert stacks (SwitchLinear) are 3-D


def optimizers():
    return [optim.Adam(1e-2), optim.AdamW(3e-3, weight_decay=0.01)]


def mlx_multi():
    return optim.MultiOptimizer(optimizers(), [lambda path, array: array.ndim >= 2])


def args_for(tmp_path, iters=6, **kwargs):
    settings = {"batch_size": 4, "iters": iters, "steps_per_report": kwargs.pop("report", 3),
                "steps_per_eval": 10_000, "steps_per_save": kwargs.pop("save", 10_000),
                "adapter_file": str(tmp_path / "adapters.safetensors")}
    return TrainingArgs(**{**settings, **kwargs})


def run(model, optimizer, args, data=None, **kwargs):
    np.random.seed(0)  # mlx-lm shuffles with numpy's global generator
    mx.random.seed(0)
    with contextlib.redirect_stdout(io.StringIO()):  # mlx-lm's own report
        train(model, optimizer, data if data is not None else token_dataset(), args=args, **kwargs)
    mx.eval(model.parameters(), optimizer.state)


def variant(name, kind):
    model = build(name)
    return {"full": lambda m: m, "lora": lora, "qlora": qlora}[kind](model)


CASES = [(name, "full") for name in DENSE + MOE] + [("llama", "lora"), ("qwen3_moe", "lora"),
                                                   ("llama", "qlora"), ("mixtral", "qlora")]
FAST = {("llama", "full"), ("llama", "lora"), ("llama", "qlora"), ("mixtral", "full")}


@pytest.mark.parametrize("name, kind", [
    pytest.param(n, k, marks=() if (n, k) in FAST else pytest.mark.slow) for n, k in CASES])
def test_bit_identical_to_mlx_multioptimizer_inside_mlx_lm_train(tmp_path, name, kind):
    ours_model, theirs_model = variant(name, kind), variant(name, kind)
    ours, theirs = MultiOptimizer(optimizers(), [MATRICES]), mlx_multi()
    args = args_for(tmp_path)
    run(ours_model, ours, args)
    run(theirs_model, theirs, args)
    assert_identical(ours_model.trainable_parameters(), theirs_model.trainable_parameters())
    assert_identical(ours.state["states"], theirs.state["states"])
    assert [int(o.step.item()) for o in ours.optimizers] == [6, 6]


def test_gradient_accumulation_is_bit_identical(tmp_path):
    ours_model, theirs_model = build("llama"), build("llama")
    ours, theirs = MultiOptimizer(optimizers(), [MATRICES]), mlx_multi()
    args = args_for(tmp_path, iters=8, grad_accumulation_steps=2)
    callback = LabCallback(ours, ours_model, args=args)
    run(ours_model, ours, args, training_callback=callback,
        iterate_batches=callback.iterate_batches)
    run(theirs_model, theirs, args)
    assert_identical(ours_model.parameters(), theirs_model.parameters())
    assert int(ours.step.item()) == 4  # one update every two iterations
    assert ours.metrics_step == 4


class RepartitionAt(TrainingCallback):
    """Repartitions (or requests one) from mlx-lm's own callback hook."""

    def __init__(self, optimizer, model, iteration, rules, request=False):
        self.optimizer, self.model, self.iteration, self.rules = optimizer, model, iteration, rules
        self.request, self.pending = request, None

    def on_train_loss_report(self, info):
        if info["iteration"] == self.iteration:
            if self.request:  # what the rule editor's Apply does, from its thread
                self.pending = self.optimizer.request_repartition(self.rules)
            else:
                self.optimizer.repartition(self.rules, self.model)


def one_batch():
    # A data set of one batch: every iteration trains on the same batch, so a
    # run cut in two trains exactly like a run in one go.
    return token_dataset(count=4)


REPARTITIONS = [(name, "full", ["ndim == 1"]) for name in DENSE + MOE] + [
    ("llama", "lora", ['glob("*lora_a")']), ("qwen3_moe", "lora", ['glob("*lora_a")']),
    ("llama", "qlora", ['glob("*lora_a")'])]


@pytest.mark.parametrize("name, kind, rules", [
    pytest.param(n, k, r, marks=() if (n, k) in FAST else pytest.mark.slow)
    for n, k, r in REPARTITIONS])
def test_a_repartition_from_a_callback_takes_effect_at_the_next_step(tmp_path, name, kind, rules):
    model = variant(name, kind)
    opt = MultiOptimizer(optimizers(), [MATRICES])
    before = opt.assign(model).labels
    run(model, opt, args_for(tmp_path), data=one_batch(),
        training_callback=RepartitionAt(opt, model, 3, rules))
    assert [int(o.step.item()) for o in opt.optimizers] == [6, 6]
    after = opt.assign(model).labels
    assert after != before, "the new rules move nothing: the test would prove nothing"
    # Trained in two halves with the compiled step made again: the very same bits.
    twin_model = variant(name, kind)
    twin = MultiOptimizer(optimizers(), [MATRICES])
    run(twin_model, twin, args_for(tmp_path, iters=3), data=one_batch())
    twin.repartition(rules, twin_model)
    run(twin_model, twin, args_for(tmp_path, iters=3), data=one_batch())
    assert [int(o.step.item()) for o in twin.optimizers] == [6, 6]
    assert_identical(model.trainable_parameters(), twin_model.trainable_parameters())
    assert_identical(opt.state["states"], twin.state["states"])
    # Each moved parameter trained in its new group: it has that optimizer's state there.
    for path, label in after.items():
        holder = opt.state["states"][opt.labels.index(label)]
        assert path in {key.rsplit(".", 1)[0] for key, _ in tree_flatten(holder)}, path


@pytest.mark.parametrize("per_step", [True, False])
def test_the_editors_request_lands_at_the_next_step_boundary(tmp_path, per_step):
    model = build("llama")
    opt = MultiOptimizer(optimizers(), [MATRICES])
    args = args_for(tmp_path, iters=9)
    requester = RepartitionAt(opt, model, 3, ["ndim == 1"], request=True)
    callback = LabCallback(opt, model, args=args, wrapped_callback=requester)
    extra = {"iterate_batches": callback.iterate_batches} if per_step else {}
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")  # the callback serves it: no warning
        run(model, opt, args, data=one_batch(), training_callback=callback, **extra)
    assert requester.pending.done and requester.pending.error is None
    # Per step: before iteration 4; from the reports only: at the next one (iteration 6).
    applied_after = 3 if per_step else 6
    twin_model = build("llama")
    twin = MultiOptimizer(optimizers(), [MATRICES])
    run(twin_model, twin, args_for(tmp_path, iters=applied_after), data=one_batch())
    twin.repartition(["ndim == 1"], twin_model)
    run(twin_model, twin, args_for(tmp_path, iters=9 - applied_after), data=one_batch())
    assert_identical(model.parameters(), twin_model.parameters())


def test_the_callback_records_losses_rates_and_metrics_of_reported_steps(tmp_path):
    model = lora(build("llama"))
    schedule = optim.cosine_decay(1e-2, 12)
    opt = MultiOptimizer([optim.Adam(schedule), optim.AdamW(1e-3)], ['glob("*lora_a")'],
                         labels=["lora_a", "lora_b"])
    args = args_for(tmp_path, iters=12, report=4, steps_per_eval=4, val_batches=1)
    callback = LabCallback(opt, model, args=args)
    run(model, opt, args, training_callback=callback, iterate_batches=callback.iterate_batches,
        val_dataset=token_dataset(count=4, seed=1))
    history = callback.history
    # mlx-lm calls nothing at its end: the last report ends the run (monitors draw their final state).
    assert history.is_finished(callback.run)
    frame = history.frame
    assert frame[frame.metric == "loss"].step.tolist() == [4, 8, 12]
    # mlx-lm evaluates before iterations 1, 4, 8 and 12: after 0, 3, 7 and 11 steps.
    assert frame[frame.metric == "val_loss"].step.tolist() == [0, 3, 7, 11]
    rates = frame[(frame.metric == "learning_rate") & (frame.group == "lora_a")].value.tolist()
    # The rate the last update used: update n runs at schedule(n - 1), as in MLX.
    assert rates == pytest.approx([schedule(mx.array(s - 1)).item() for s in (4, 8, 12)])
    norms = frame[(frame.metric == "update_norm")]
    assert set(norms.group) == {"lora_a", "lora_b", "total"}
    assert norms.step.tolist().count(12) == 3
    assert history.labels() == ("lora_a", "lora_b")
    assert history.metadata()["trainer"] == "mlx_lm"
    # LoRA: A and B really went to their groups.
    labels = opt.assign(model).labels
    assert all(label == ("lora_a" if path.endswith("lora_a") else "lora_b")
               for path, label in labels.items())


def test_saved_state_resumes_the_run_bit_for_bit(tmp_path):
    straight_model = lora(build("llama"))
    straight = MultiOptimizer(optimizers(), [MATRICES])
    run(straight_model, straight, args_for(tmp_path, iters=6), data=one_batch())

    first = tmp_path / "b"
    first.mkdir()
    model = lora(build("llama"))
    opt = MultiOptimizer(optimizers(), [MATRICES])
    args = args_for(first, iters=3, save=3)
    callback = LabCallback(opt, model, args=args, save_state=True)
    run(model, opt, args, data=one_batch(), training_callback=callback,
        iterate_batches=callback.iterate_batches)
    assert state_file_for(args.adapter_file).exists()
    assert state_file_for(args.adapter_file, 3).exists()

    resumed_model = lora(build("llama"))
    resumed_model.load_weights(args.adapter_file, strict=False)
    resumed = MultiOptimizer(optimizers(), [MATRICES])
    report = resume(resumed, resumed_model, args.adapter_file)
    assert not report.initialised and not report.unused
    run(resumed_model, resumed, args_for(first, iters=3), data=one_batch())
    assert [int(o.step.item()) for o in resumed.optimizers] == [6, 6]
    assert_identical(resumed_model.trainable_parameters(), straight_model.trainable_parameters())
    assert_identical(resumed.state["states"], straight.state["states"])


def test_a_plain_mlx_optimizer_records_its_loss_and_learning_rate(tmp_path):
    model = lora(build("llama"))
    opt = optim.Adam(1e-3)
    args = args_for(tmp_path)
    callback = LabCallback(opt, model, args=args)
    run(model, opt, args, training_callback=callback, iterate_batches=callback.iterate_batches)
    assert callback.history.last("learning_rate") == pytest.approx(1e-3)
    assert callback.history.last_step() == 6


def test_bad_arguments_are_refused_with_the_fix():
    model = build("llama")
    opt = MultiOptimizer(optimizers(), [MATRICES])
    with pytest.raises(ValueError, match="save_state=True needs args"):
        LabCallback(opt, model, save_state=True)
    with pytest.raises(TypeError, match="iterate_batches must be a function"):
        LabCallback(opt, model, iterate_batches=3)


def test_importing_the_package_does_not_import_mlx_lm():
    code = "import sys, multiopt_lab; print('mlx_lm' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
