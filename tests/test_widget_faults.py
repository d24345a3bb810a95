"""Widget faults: a raising callable rule, rule edits applied during training, comm leaks.

Widgets run against ipywidgets' test comm, with one change: each comm gets its
own id (ipywidgets' ``DummyComm`` shares one id, so its registry could not
count leaks), and every comm records whether it was closed.
"""

from __future__ import annotations

import threading
import uuid
import warnings

import comm
import ipywidgets
import ipywidgets.widgets.widget as widget_module
import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from ipywidgets.widgets.tests.utils import DummyComm, setup_test_comm, teardown_test_comm
from mlx.utils import tree_flatten

from multiopt_lab import (
    History, LabWidget, MultiOptimizer, ParameterTreeWidget, RuleEditorWidget,
    TrainingMonitorWidget,
)
from multiopt_lab.examples import MLP


class CountedComm(DummyComm):
    opened: list = []

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.comm_id = uuid.uuid4().hex
        self.closed = False
        CountedComm.opened.append(self)

    def close(self, *args, **kwargs):
        self.closed = True


@pytest.fixture(autouse=True)
def counted_comms():
    setup_test_comm()
    saved = (ipywidgets.Widget.comm.klass, widget_module.Comm, comm.create_comm)
    ipywidgets.Widget.comm.klass = widget_module.Comm = CountedComm
    comm.create_comm = lambda **kwargs: CountedComm()
    CountedComm.opened = []
    # Widgets other test files left open share DummyComm's single id, and any of them may be
    # closed while we count: start from an empty registry.
    ipywidgets.Widget.close_all()
    yield CountedComm
    ipywidgets.Widget.comm.klass, widget_module.Comm, comm.create_comm = saved
    teardown_test_comm()


def live_widgets() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Widget.widgets is deprecated, not gone
        return len(ipywidgets.Widget.widgets)


def display_bundle(widget) -> dict:
    # setup_test_comm replaces _repr_mimebundle_ by a stub that raises; run the real one.
    from ipywidgets.widgets.tests.utils import _widget_attrs

    return _widget_attrs["_repr_mimebundle_"](widget)


def model_and_optimizer():
    mx.random.seed(0)
    model = MLP(8, [16, 16], 4)
    opt = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
    return model, opt


MAKERS = {
    "tree": lambda model, opt: ParameterTreeWidget(model, opt),
    "editor": lambda model, opt: RuleEditorWidget(model, opt, debounce_seconds=0),
    "monitor": lambda model, opt: TrainingMonitorWidget(History()),
    "lab": lambda model, opt: LabWidget(model, opt, History(), debounce_seconds=0),
    "lab_without_history": lambda model, opt: LabWidget(model, opt),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_create_display_close_leaks_no_comm(kind, counted_comms):
    model, opt = model_and_optimizer()
    baseline, opened_before = live_widgets(), len(counted_comms.opened)
    for _ in range(4):
        widget = MAKERS[kind](model, opt)
        first = display_bundle(widget)
        assert display_bundle(widget) == first  # displaying again opens nothing new
        widget.close()
        assert live_widgets() == baseline
    new = counted_comms.opened[opened_before:]
    assert new and all(c.closed for c in new), f"{sum(not c.closed for c in new)} comms left open"


def test_a_closed_editor_stops_following_the_optimizer():
    model, opt = model_and_optimizer()
    tree = ParameterTreeWidget(model, opt)
    editor = RuleEditorWidget(model, opt, tree=tree, debounce_seconds=0)
    editor.close()
    assert tree.comm is not None, "a tree handed to the editor is not the editor's to close"
    opt.repartition(["ndim == 1"], model)
    tree.watcher.check()  # the tree refreshes itself; the closed editor is not called
    assert tree.assignment.labels["layers.0.bias"] == "muon"
    tree.close()


# -- a callable rule that raises on one parameter -------------------------------------------------
class Flaky:
    """A callable rule that raises on one path once armed (not declared structural, so the
    editor's assignment calls it again on every evaluation)."""

    def __init__(self, path):
        self.path, self.armed = path, False

    def __call__(self, path, array):
        if self.armed and path == self.path:
            raise KeyError(f"no entry for {path}")
        return array.ndim == 1


def test_a_raising_callable_is_reported_with_its_path_and_the_assignment_stays():
    model, _ = model_and_optimizer()
    flaky = Flaky("layers.1.bias")
    opt = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3), optim.SGD(0.1)],
                         ["ndim == 2 and size > 200", flaky], labels=["muon", "vectors", "rest"])
    editor = RuleEditorWidget(model, opt, debounce_seconds=0)
    shown, current = editor.tree.assignment, editor.current
    flaky.armed = True
    editor.inputs["muon"].value = "ndim == 2"  # re-evaluates every rule, the callable too
    assert "layers.1.bias" in editor.errors["vectors"].value
    assert "KeyError" in editor.errors["vectors"].value or "no entry" in editor.errors["vectors"].value
    assert editor.tree.assignment is shown and editor.current is current
    assert editor.apply_button.disabled
    editor.apply()
    assert "Not applied" in editor.status.value
    assert opt.filters[1].function is flaky and opt.filters[0].text == "ndim == 2 and size > 200"
    editor.close()


def test_a_repartition_with_a_raising_callable_changes_nothing_and_names_the_path():
    model, opt = model_and_optimizer()
    editor = RuleEditorWidget(model, opt, debounce_seconds=0)
    before = (opt.filters, {k: v for k, v in tree_flatten(opt.state)}, editor.tree.assignment)
    flaky = Flaky("layers.0.bias")
    flaky.armed = True
    editor.applier.apply([flaky], opt.labels)  # as code or another front end would request it
    assert "layers.0.bias" in editor.status.value and "Not applied" in editor.status.value
    assert opt.filters == before[0] and editor.tree.assignment is before[2]
    after = {k: v for k, v in tree_flatten(opt.state)}
    assert after.keys() == before[1].keys() and all(after[k] is before[1][k] for k in after)
    editor.close()


# -- rule edits applied while a training loop runs --------------------------------------------------
RULES = ["ndim == 2", "ndim == 2 and size > 200"]


def owners(opt, paths):
    """``path -> index of the optimizer holding its state`` (each path must be in exactly one)."""
    found = {}
    for g, optimizer in enumerate(opt.optimizers):
        keys = {k.rsplit(".", 1)[0] for k, _ in tree_flatten(optimizer.state)}
        for path in paths:
            if path in keys:
                assert path not in found, f"{path} has state in two groups"
                found[path] = g
    return found


def test_edits_during_training_apply_once_and_whole():
    model, opt = model_and_optimizer()
    editor = RuleEditorWidget(model, opt, debounce_seconds=0)
    paths = [p for p, _ in tree_flatten(model.trainable_parameters())]
    x, y = mx.ones((4, 8)), mx.zeros((4, 4))
    grad_fn = nn.value_and_grad(model, lambda m: mx.mean(mx.square(m(x) - y)))
    repartitions, problems, steps = [], [], [0]
    real_repartition = opt.repartition

    def counting_repartition(*args, **kwargs):
        moves = real_repartition(*args, **kwargs)
        repartitions.append(tuple(r.text for r in opt.filters))
        return moves

    opt.repartition = counting_repartition  # the real method runs; we count the calls
    stop = threading.Event()

    def train():
        while not stop.is_set() and steps[0] < 2000:
            _, grads = grad_fn(model)
            opt.update(model, grads)
            mx.eval(model.parameters(), opt.state)
            steps[0] += 1
            with opt.update_lock:  # no repartition can land while we look
                expected = opt.assign(model).group_index
                if owners(opt, paths) != {p: expected[p] for p in paths}:
                    problems.append((steps[0], opt.filters[0].text))

    _, grads = grad_fn(model)
    opt.update(model, grads)
    mx.eval(model.parameters(), opt.state)  # built on this thread: evaluate before handing over
    steps[0] += 1
    worker = threading.Thread(target=train)
    worker.start()
    try:
        done = []
        for i in range(8):
            editor.inputs["muon"].value = RULES[(i + 1) % 2]
            editor.apply()  # no event loop here: applied now, under the update lock
            done.append(editor.status.value)
    finally:
        stop.set()
        worker.join(timeout=60)
    assert not worker.is_alive()
    assert problems == [], f"a step saw a half-applied partition: {problems[:3]}"
    assert repartitions == [(RULES[(i + 1) % 2],) for i in range(8)], repartitions
    assert all(status.startswith("Applied") for status in done), done
    assert steps[0] > 0 and opt.optimizers[0].state["step"].item() == steps[0]
    editor.close()


def test_a_request_picked_up_by_the_training_loop_is_applied_once():
    model, opt = model_and_optimizer()
    x = mx.ones((4, 8))
    grad_fn = nn.value_and_grad(model, lambda m: mx.mean(m(x)))
    calls = []
    real = opt.repartition
    opt.repartition = lambda *a, **k: calls.append(a[0]) or real(*a, **k)
    pending = opt.request_repartition(["ndim == 1"])
    replaced = opt.request_repartition(["ndim == 2 and size > 200"])  # a second Apply before a step
    for _ in range(3):
        _, grads = grad_fn(model)
        opt.update(model, grads)
    assert pending.done and pending.error is not None and "replaced" in str(pending.error)
    assert replaced.done and replaced.error is None
    assert len(calls) == 1 and opt.filters[0].text == "ndim == 2 and size > 200"
