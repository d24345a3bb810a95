# Tests the private modules' own units: multiopt_lab._src.device,
#   multiopt_lab._src.optimizer.describe, multiopt_lab._src.training.progress.
"""train(): learning, metrics of a MultiOptimizer, clean stops, batches, compile."""

from __future__ import annotations

import io
import signal

import mlx.core as mx
import mlx.optimizers as optim
import pytest

from multiopt_lab import History, MultiOptimizer, examples, train
from multiopt_lab._src.device import describe_device
from multiopt_lab._src.optimizer.describe import optimizer_metadata
from multiopt_lab._src.training.progress import (
    StopSignal, TextProgress, catch_interrupt, format_seconds,
)


def losses(history: History, run: str | None = None) -> list[float]:
    frame = history.frame
    run = run or history.current_run
    return frame[(frame.run == run) & (frame.metric == "loss")]["value"].tolist()


@pytest.fixture
def digits():
    return examples.digits(batch_size=64)


def small_mlp():
    mx.random.seed(0)
    return examples.MLP(64, 32, 10)


def test_loss_goes_down_on_the_sequence_task():
    task = examples.sequence_task("reverse", length=3, batch_size=16)
    mx.random.seed(0)
    model = examples.TinyGPT(task.vocab_size, dims=32, layers=1, heads=2)
    history = train(model, optim.Adam(3e-3), task.loss_fn, task.batch, 80, progress=False)
    values = losses(history)
    assert len(values) == 80
    assert sum(values[-10:]) / 10 < 0.5 * sum(values[:10]) / 10


def test_multi_optimizer_metrics_are_recorded_every_k_steps(digits):
    model = small_mlp()
    optimizer = MultiOptimizer([optim.Adam(1e-2), optim.SGD(0.1)], ["ndim == 2"], labels=["matrices", "vectors"])
    history = train(model, optimizer, digits.loss_fn, digits.batch, 25, metrics_every=10, progress=False, run="split")
    frame = history.frame
    ratio = frame[frame.metric == "update_ratio"]
    assert sorted(set(ratio.step)) == [1, 11, 21]
    assert set(ratio.group) == {"matrices", "vectors", "total"}
    assert history.labels("split") == ("matrices", "vectors")
    meta = history.metadata("split")
    assert meta["rules"] == ["ndim == 2"] and [o["class"] for o in meta["optimizers"]] == ["Adam", "SGD"]
    assert history.last("learning_rate", group="vectors") == pytest.approx(0.1)
    assert optimizer.metrics_every is None  # restored after training
    assert history.is_finished("split")


def test_compiled_training_records_metrics_every_k_steps_too(digits):
    optimizer = MultiOptimizer([optim.Adam(1e-2), optim.SGD(0.1)], ["ndim == 2"], labels=["matrices", "vectors"])
    history = train(small_mlp(), optimizer, digits.loss_fn, digits.batch, 12, metrics_every=5, compile=True, progress=False)
    frame = history.frame
    assert sorted(set(frame[frame.metric == "update_norm"].step)) == [1, 6, 11]
    assert len(losses(history)) == 12


def test_plain_optimizer_records_loss_only(digits):
    history = train(small_mlp(), optim.SGD(0.1), digits.loss_fn, digits.batch, 5, progress=False)
    assert set(history.frame.metric) == {"loss"}
    assert optimizer_metadata(optim.SGD(0.1)) == {"optimizer": "SGD", "optimizers": [{"class": "SGD", "learning_rate": pytest.approx(0.1)}]}


def test_interrupt_stops_at_a_step_boundary_and_keeps_the_history(digits, capsys):
    def interrupt_at_step_4(step, loss, history):
        if step == 4:
            signal.raise_signal(signal.SIGINT)

    history = train(small_mlp(), optim.Adam(1e-2), digits.loss_fn, digits.batch, 50, callbacks=[interrupt_at_step_4], progress=False)
    assert losses(history) and history.last_step() == 4 and len(losses(history)) == 4
    assert history.is_finished()
    assert "stopped after 4 of 50 steps (interrupted (Ctrl-C))" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_second_interrupt_raises_at_once():
    stop = StopSignal()
    with pytest.raises(KeyboardInterrupt):
        with catch_interrupt(stop):
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
    assert stop.requested


def test_callback_returning_true_stops(digits, capsys):
    history = train(small_mlp(), optim.SGD(0.1), digits.loss_fn, digits.batch, 30, callbacks=[lambda step, loss, h: step >= 3], progress=False)
    assert history.last_step() == 3
    # A stop the user asked for is reported on stdout: no stderr box in a notebook.
    printed = capsys.readouterr()
    assert "Training stopped after 3 of 30 steps (callback '<lambda>' asked to stop)" in printed.out
    assert printed.err == ""


def test_iterable_batches_that_run_out_end_training(digits):
    batches = [digits.batch(i) for i in range(3)]
    history = train(small_mlp(), optim.SGD(0.1), digits.loss_fn, batches, 10, progress=False)
    assert history.last_step() == 3


def test_single_array_batches_and_callable_steps_continue_a_run():
    x = mx.random.normal((32, 4))
    seen = []

    def batch(step):
        seen.append(step)
        return x

    def loss_fn(model, inputs):
        return (model(inputs) ** 2).mean()

    history = History()
    model = examples.MLP(4, 8, 2)
    train(model, optim.SGD(0.01), loss_fn, batch, 3, history=history, run="r", progress=False)
    train(model, optim.SGD(0.01), loss_fn, batch, 2, history=history, run="r", progress=False)
    assert seen == [0, 1, 2, 3, 4]
    assert sorted(history.frame.step) == [1, 2, 3, 4, 5] and history.runs == ("r",)


def test_compiled_training_matches_eager(digits):
    eager = train(small_mlp(), optim.Adam(1e-2), digits.loss_fn, digits.batch, 8, progress=False)
    compiled = train(small_mlp(), optim.Adam(1e-2), digits.loss_fn, digits.batch, 8, progress=False, compile=True)
    assert losses(compiled) == pytest.approx(losses(eager), rel=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"steps": -1}, "non-negative int"), ({"steps": 2.5}, "non-negative int"), ({"metrics_every": 0}, "positive int")],
)
def test_bad_arguments_are_refused_before_training(digits, kwargs, message):
    history = History()
    arguments = {"steps": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        train(small_mlp(), optim.SGD(0.1), digits.loss_fn, digits.batch, history=history, progress=False, **arguments)
    assert len(history) == 0 and history.runs == ()


def test_batches_of_the_wrong_kind():
    with pytest.raises(TypeError, match="iterable of batches .* or a function step -> batch"):
        train(small_mlp(), optim.SGD(0.1), examples.cross_entropy_loss, 42, 3, progress=False)


def test_text_progress_in_a_terminal():
    out = io.StringIO()
    clock = iter([0.0, 1.0, 1.05, 2.0, 4.0]).__next__
    bar = TextProgress(4, StopSignal(), stream=out, clock=clock, max_rate=10)
    bar.update(1, 2.0)   # t=1.0: drawn
    bar.update(2, 1.5)   # t=1.05: too soon, skipped
    bar.update(4, 1.0)   # t=2.0: drawn
    bar.close()          # t=4.0
    lines = out.getvalue().split("\r")[1:]
    on = f" on {describe_device()}"
    assert lines[0] == "[#####               ] 1/4 loss 2.0000 0:01<0:03" + on
    assert lines[1] == "[####################] 4/4 loss 1.0000 0:02<0:00" + on
    assert lines[2].endswith("0:04<0:00" + on + "\n") and len(lines) == 3
    assert format_seconds(3725) == "1:02:05"


def test_train_shows_the_text_bar_outside_a_notebook(digits, capsys):
    train(small_mlp(), optim.SGD(0.1), digits.loss_fn, digits.batch, 3)
    assert "3/3 loss" in capsys.readouterr().err
