# Tests the private modules' own units: multiopt_lab._src.training.progress,
#   multiopt_lab._src.widgets.progress.
"""Edits from any thread, training on any other (issue 13, defect 2).

MLX binds a lazy array to the stream of the thread that created it: state
initialised by a repartition on the rule editor's thread (a kernel subshell)
before the first step failed later on the training thread with ``There is no
Stream(cpu, 1) in current thread``, in every later ``train`` of the kernel.
"""

import io
import threading
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest

import multiopt_lab as mol
from multiopt_lab._src.training.progress import StopSignal, TextProgress


def make():
    mx.random.seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = mol.MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)], ["ndim == 2"])
    mx.eval(model.parameters())
    return model, opt


def loss_fn(model, x):
    return mx.mean(model(x) ** 2)


def on_thread(function):
    errors = []

    def target():
        try:
            function()
        except BaseException as error:  # reported to the test's thread
            errors.append(error)

    worker = threading.Thread(target=target)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive()
    if errors:
        raise errors[0]


def eager_steps(model, opt, steps=3):
    grad_fn = nn.value_and_grad(model, loss_fn)
    for _ in range(steps):
        _, grads = grad_fn(model, mx.ones((2, 4)))
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)


def compiled_steps(model, opt, steps=3):
    state = [model.state, opt.state]
    grad_fn = nn.value_and_grad(model, loss_fn)

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x):
        loss, grads = grad_fn(model, x)
        opt.update(model, grads)
        return loss

    for _ in range(steps):
        mx.eval(step(mx.ones((2, 4))), state)


@pytest.mark.parametrize("train", [eager_steps, compiled_steps])
def test_a_repartition_on_another_thread_before_step_one(train):
    model, opt = make()
    on_thread(lambda: opt.repartition(["ndim == 1"], model))
    train(model, opt)
    assert opt.step.item() == 3 and opt.assign(model).labels["layers.0.bias"] == "sgd"


def test_a_request_applied_on_another_thread_before_step_one():
    model, opt = make()

    def edit():
        opt.request_repartition(["ndim == 1"])
        opt.apply_pending_repartition(model)  # what the editor's Apply does when no loop runs

    on_thread(edit)
    mx.eval(opt.state)
    eager_steps(model, opt)
    assert opt.step.item() == 3


def test_train_after_an_edit_on_another_thread():
    model, opt = make()
    on_thread(lambda: opt.repartition(["ndim == 1"], model))
    history = mol.train(model, opt, loss_fn, lambda i: (mx.ones((2, 4)),), 3, progress=False)
    assert history.last_step() == 3


def test_training_on_another_thread_after_an_edit_here():
    model, opt = make()
    eager_steps(model, opt, 1)
    opt.repartition(["ndim == 1"], model)
    on_thread(lambda: eager_steps(model, opt, 2))
    on_thread(lambda: opt.repartition(["ndim == 2"], model))
    eager_steps(model, opt, 2)
    assert opt.step.item() == 5


def test_init_on_another_thread():
    model, opt = make()
    on_thread(lambda: opt.init(model.trainable_parameters()))
    eager_steps(model, opt)
    assert opt.step.item() == 3


def test_the_text_progress_bar_shows_a_failure():
    model, opt = make()
    stream = io.StringIO()

    def failing_loss(model, x):
        if failing_loss.calls == 2:
            raise RuntimeError("the data loader broke")
        failing_loss.calls += 1
        return loss_fn(model, x)

    failing_loss.calls = 0
    bar = TextProgress(5, StopSignal(), stream=stream)
    with pytest.raises(RuntimeError, match="data loader"):
        mol.train(model, opt, failing_loss, lambda i: (mx.ones((2, 4)),), 5, progress=bar)
    last = stream.getvalue().splitlines()[-1]
    assert "failed" in last and "RuntimeError: the data loader broke" in last
    assert "2/5" in last


def test_the_notebook_progress_bar_shows_a_failure(recorded_comm):
    from multiopt_lab._src.widgets.progress import NotebookProgress

    model, opt = make()

    def failing_loss(model, x):
        raise ValueError("shapes do not match")

    bar = NotebookProgress(5, StopSignal(), display_now=False)
    with pytest.raises(ValueError):
        mol.train(model, opt, failing_loss, lambda i: (mx.ones((2, 4)),), 5, progress=bar)
    assert bar.bar.bar_style == "danger"
    assert bar.stop_button.description == "Failed" and bar.stop_button.disabled
    assert "ValueError: shapes do not match" in bar.label.value


@pytest.mark.usefixtures("recorded_comm")
def test_a_keystroke_while_a_scheduled_step_is_not_yet_evaluated_on_the_training_thread():
    # While a cell trains, the editor redraws on the kernel's subshell thread; between the
    # training thread's update and its eval, a scheduled learning rate is an array that thread
    # made and has not evaluated. The legend read it: "There is no Stream(cpu, 1) in current
    # thread", and the keystroke's redraw failed.
    model, _ = make()
    opt = mol.MultiOptimizer([optim.Muon(optim.cosine_decay(0.02, 100)), optim.AdamW(1e-3)],
                             ["ndim == 2"], labels=["muon", "adamw"])
    editor = mol.RuleEditorWidget(model, opt, debounce_seconds=0)
    x, y = mx.ones((8, 4)), mx.zeros((8,), dtype=mx.int32)

    def step_without_eval():
        _, grads = nn.value_and_grad(model, lambda m: nn.losses.cross_entropy(m(x), y).mean())(model)
        opt.update(model, grads)

    worker = threading.Thread(target=step_without_eval)
    worker.start()
    worker.join()
    editor.inputs["muon"].value = "ndim == 1"
    assert "muon" in editor.preview.value and "There is no Stream" not in editor.status.value
    assert "cosine_decay(0.02, 100, 0)" in editor.tree.view.html or \
        "cosine_decay(0.02, 100, 0)" in editor.legend.value
