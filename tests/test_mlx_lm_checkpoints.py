# Tests the private modules' own units: multiopt_lab._src.io.checkpoint,
#   multiopt_lab._src.io.checksum.
"""LabCallback(save_state=True) inside mlx-lm's own trainer: every adapter file mlx-lm writes
has the optimizer state of the same iteration beside it, whatever the cadence, and
``resume`` refuses adapters and a state from different iterations, naming both.

mlx-lm 0.32.2 saves at iteration ``it`` after its report when ``it`` is a multiple of
``steps_per_save`` (``adapters.safetensors`` and ``0000it_adapters.safetensors``),
and ``adapters.safetensors`` once more after its loop.
"""

from __future__ import annotations

import contextlib
import io
import shutil

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest

pytest.importorskip("mlx_lm")

from mlx_lm.tuner.trainer import TrainingArgs, train  # noqa: E402

from mlx_lm_models import build, token_dataset  # noqa: E402
from multiopt_lab import MultiOptimizer  # noqa: E402
from multiopt_lab._src.io.checkpoint import state_metadata  # noqa: E402
from multiopt_lab.integrations.mlx_lm import (ADAPTERS_KEY, ITERATION_KEY, LabCallback,  # noqa: E402
                                              adapters_checksum, resume, state_file_for)
from multiopt_lab._src.io.checksum import checksum  # noqa: E402


def lora_llama():
    return build("llama+lora")


def new_optimizer():
    return MultiOptimizer([optim.Adam(1e-2), optim.AdamW(3e-3)], ['glob("*lora_a")'])


def args_for(folder, iters, report, save, **kwargs):
    return TrainingArgs(batch_size=4, iters=iters, steps_per_report=report, steps_per_eval=10_000,
                        steps_per_save=save, adapter_file=str(folder / "adapters.safetensors"),
                        **kwargs)


def run(model, optimizer, args, per_step, data=None):
    callback = LabCallback(optimizer, model, args=args, save_state=True)
    extra = {"iterate_batches": callback.iterate_batches} if per_step else {}
    np.random.seed(0)
    mx.random.seed(0)
    with contextlib.redirect_stdout(io.StringIO()):
        train(model, optimizer, data or token_dataset(count=8), args=args,
              training_callback=callback, **extra)
    return callback


def file_checksum(path):
    return checksum(dict(mx.load(str(path))), {})


def assert_every_adapter_file_has_its_state(folder):
    adapters = sorted(folder.glob("*adapters.safetensors"))
    assert adapters
    for adapter in adapters:
        numbered = adapter.name != "adapters.safetensors"
        iteration = int(adapter.name.split("_")[0]) if numbered else None
        state = state_file_for(folder / "adapters.safetensors", iteration)
        assert state.exists(), f"no optimizer state beside {adapter.name}"
        metadata = state_metadata(state)
        assert metadata[ADAPTERS_KEY] == file_checksum(adapter), adapter.name
        if numbered:
            assert metadata[ITERATION_KEY] == str(iteration)


# (iters, steps_per_report, steps_per_save, grad_accumulation_steps): saves that
# follow a report, or not; a last iteration that is or is not a save; accumulation.
ALIGNED = [(8, 2, 4, 1), (9, 3, 3, 1), (7, 2, 2, 1), (8, 1, 2, 2), (6, 3, 6, 1)]
UNALIGNED = [(8, 3, 2, 1), (9, 4, 3, 1), (8, 5, 2, 2), (7, 2, 3, 1)]


@pytest.mark.parametrize("iters, report, save, accumulation", ALIGNED + UNALIGNED)
def test_with_iterate_batches_every_adapter_file_has_its_state(tmp_path, iters, report, save,
                                                                accumulation):
    model, optimizer = lora_llama(), new_optimizer()
    run(model, optimizer, args_for(tmp_path, iters, report, save,
                                   grad_accumulation_steps=accumulation), per_step=True)
    assert_every_adapter_file_has_its_state(tmp_path)
    latest = state_metadata(state_file_for(tmp_path / "adapters.safetensors"))
    assert latest[ITERATION_KEY] == str(iters)
    assert latest[ADAPTERS_KEY] == adapters_checksum(model)


@pytest.mark.parametrize("iters, report, save, accumulation", ALIGNED)
def test_without_iterate_batches_saves_after_reports_have_their_state(tmp_path, iters, report,
                                                                      save, accumulation):
    run(lora_llama(), new_optimizer(), args_for(tmp_path, iters, report, save,
                                                grad_accumulation_steps=accumulation),
        per_step=False)
    assert_every_adapter_file_has_its_state(tmp_path)


@pytest.mark.parametrize("iters, report, save, accumulation", UNALIGNED)
def test_without_iterate_batches_unreported_saves_are_refused(tmp_path, iters, report, save,
                                                              accumulation):
    # Before: the run went on, numbered adapter files had no state beside them and
    # optimizer.safetensors fell behind adapters.safetensors.
    with pytest.raises(ValueError, match="iterate_batches=callback.iterate_batches"):
        run(lora_llama(), new_optimizer(), args_for(tmp_path, iters, report, save,
                                                    grad_accumulation_steps=accumulation),
            per_step=False)
    # The run stops at the callback's first call (its first report): at most the
    # adapters saved before it lack a state, and the message lists them.
    for adapter in tmp_path.glob("0*_adapters.safetensors"):
        assert int(adapter.name[:7]) < report


def test_the_refusal_comes_before_any_save_with_validation_data(tmp_path):
    # mlx-lm reports the validation loss before the first step: no file is written.
    args = args_for(tmp_path, 8, 3, 2)
    callback = LabCallback(new_optimizer(), lora_llama(), args=args, save_state=True)
    with pytest.raises(ValueError, match="every 2 iterations"):
        with contextlib.redirect_stdout(io.StringIO()):
            train(callback.model, callback.optimizer, token_dataset(count=8), token_dataset(count=8),
                  args=args, training_callback=callback)
    assert not list(tmp_path.iterdir())


def test_batches_that_run_out_early_save_the_state_of_the_last_iteration(tmp_path):
    # A user's iterator that ends before args.iters: mlx-lm saves adapters.safetensors
    # from the last iteration it ran; the callback sees the end through iterate_batches.
    from mlx_lm.tuner.trainer import iterate_batches as mlx_batches

    def five_batches(*args, **kwargs):
        for i, batch in enumerate(mlx_batches(*args, **kwargs)):
            if i == 5 and kwargs.get("loop"):
                return
            yield batch

    model, optimizer = lora_llama(), new_optimizer()
    args = args_for(tmp_path, 20, 4, 10)
    callback = LabCallback(optimizer, model, args=args, save_state=True,
                           iterate_batches=five_batches)
    with contextlib.redirect_stdout(io.StringIO()):
        train(model, optimizer, token_dataset(count=8), args=args, training_callback=callback,
              iterate_batches=callback.iterate_batches)
    assert_every_adapter_file_has_its_state(tmp_path)
    assert state_metadata(state_file_for(args.adapter_file))[ITERATION_KEY] == "5"


def resumed(folder, adapter_name="adapters.safetensors", **kwargs):
    model = lora_llama()
    model.load_weights(str(folder / adapter_name), strict=False)
    return resume(new_optimizer(), model, folder / "adapters.safetensors", **kwargs)


class TestResumeChecksThePair:
    @pytest.fixture()
    def folder(self, tmp_path):
        run(lora_llama(), new_optimizer(), args_for(tmp_path, 8, 2, 2), per_step=True)
        return tmp_path

    def test_the_latest_pair_resumes(self, folder):
        assert resumed(folder).loaded

    def test_a_numbered_pair_resumes(self, folder):
        model = lora_llama()
        model.load_weights(str(folder / "0000004_adapters.safetensors"), strict=False)
        report = resume(new_optimizer(), model, folder / "0000004_adapters.safetensors")
        assert report.loaded
        model.load_weights(str(folder / "0000006_adapters.safetensors"), strict=False)
        assert resume(new_optimizer(), model, folder / "adapters.safetensors", iteration=6).loaded

    def test_a_run_stopped_between_the_two_saves_is_refused_naming_both(self, folder):
        # mlx-lm wrote adapters.safetensors at iteration 8, the run stopped before the
        # callback wrote the state of 8: optimizer.safetensors still holds iteration 6.
        shutil.copy(folder / "0000006_optimizer.safetensors", folder / "optimizer.safetensors")
        with pytest.raises(ValueError, match=r"iteration 6.*adapters of iteration 8 \(as "
                                             r"0000008_adapters\.safetensors"):
            resumed(folder)

    def test_adapters_not_loaded_into_the_model_are_refused(self, folder):
        with pytest.raises(ValueError, match="load the adapters of iteration 8 first"):
            resume(new_optimizer(), lora_llama(), folder / "adapters.safetensors")

    def test_a_numbered_file_and_another_iteration_are_refused(self, folder):
        model = lora_llama()
        model.load_weights(str(folder / "0000004_adapters.safetensors"), strict=False)
        with pytest.raises(ValueError, match="iteration 4.*iteration=6"):
            resume(new_optimizer(), model, folder / "0000004_adapters.safetensors", iteration=6)

    def test_nothing_is_loaded_when_refused(self, folder):
        shutil.copy(folder / "0000006_optimizer.safetensors", folder / "optimizer.safetensors")
        model = lora_llama()
        model.load_weights(str(folder / "adapters.safetensors"), strict=False)
        optimizer = new_optimizer()
        before = dict(optimizer.state["states"][0])
        with pytest.raises(ValueError):
            resume(optimizer, model, folder / "adapters.safetensors")
        assert dict(optimizer.state["states"][0]).keys() == before.keys()
