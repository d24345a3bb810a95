# Tests the private modules' own units: multiopt_lab._src.device, multiopt_lab._src.palette,
#   multiopt_lab._src.training.progress, multiopt_lab._src.widgets.monitor,
#   multiopt_lab._src.widgets.progress, multiopt_lab._src.widgets.subshell.
"""TrainingMonitorWidget and the notebook progress bar, without a browser.

Widgets are tested through a comm that records what the kernel would send;
throttling through an injected clock. The last test runs a real Jupyter
kernel and clicks Stop the way JupyterLab does (a ``comm_msg``) while
``train`` runs in the cell.
"""

from __future__ import annotations

import queue
import re
import threading
import time

import comm
import ipywidgets
import pytest

from multiopt_lab import History, TrainingMonitorWidget
from multiopt_lab._src.device import describe_device
from multiopt_lab._src.palette import group_colour
from multiopt_lab._src.training.progress import StopSignal
from multiopt_lab._src.widgets import monitor as monitor_module
from multiopt_lab._src.widgets.monitor import last_values_html
from multiopt_lab._src.widgets.progress import NotebookProgress
from multiopt_lab._src.widgets.subshell import route_to_subshell

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class RecordingComm:
    """Stands in for the kernel's comm: records every message the widget sends."""

    kernel = "present"

    def __init__(self, *args, **kwargs):
        self.comm_id = f"comm-{id(self)}"
        self.messages = []

    def send(self, data=None, metadata=None, buffers=None):
        self.messages.append((data, buffers))

    def on_msg(self, callback):
        pass

    def open(self, *args, **kwargs):
        pass

    def close(self, *args, **kwargs):
        pass


@pytest.fixture(autouse=True)
def close_widgets():
    # Widgets left open are closed at interpreter exit, after ipywidgets' globals are gone.
    yield
    ipywidgets.Widget.close_all()


@pytest.fixture
def comms(monkeypatch):
    created = []

    def create_comm(*args, **kwargs):
        created.append(RecordingComm())
        return created[-1]

    monkeypatch.setattr(comm, "create_comm", create_comm)
    return created


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def image_updates(widget) -> int:
    return sum(1 for data, _ in widget.image.comm.messages if data.get("method") == "update" and ["png"] in data["buffer_paths"])


def metrics(step):
    return {"matrices": {"update_norm": 0.1, "update_ratio": 1e-3, "learning_rate": 0.02}, "vectors": {"update_norm": 0.01, "update_ratio": 1e-4, "learning_rate": 0.001}, "total": {"update_norm": 0.1}}


def test_redraws_at_most_max_rate_and_catches_up(comms):
    clock, history = FakeClock(), History()
    monitor = TrainingMonitorWidget(history, max_rate=4.0, clock=clock, background=False)
    assert monitor.redraws == 1 and bytes(monitor.image.png).startswith(PNG_MAGIC)
    history.start_run("a")  # too soon after the first drawing: waits
    assert monitor.redraws == 1 and monitor.pending
    for step in range(1, 101):  # 100 steps in one second
        clock.now += 0.01
        history.record(step, loss=1.0 / step)
    # 1 s at 4/s: at most 4 redraws (+ the one at creation).
    assert 1 + 3 <= monitor.redraws <= 1 + 4
    clock.now += 0.01
    history.record(101, loss=0.01)
    assert monitor.pending
    before = monitor.redraws
    monitor.flush()
    assert monitor.redraws == before + 1 and not monitor.pending
    assert image_updates(monitor) == monitor.redraws


def test_slow_drawing_stretches_the_interval(comms, monkeypatch):
    clock, history = FakeClock(), History()
    real_plot = monitor_module.plot_training

    def slow_plot(*args, **kwargs):
        clock.now += 0.3  # pretend a redraw costs 0.3 s
        return real_plot(*args, **kwargs)

    monkeypatch.setattr(monitor_module, "plot_training", slow_plot)
    history.record(0, loss=1.0)  # something to plot: an empty history draws a cheap placeholder
    monitor = TrainingMonitorWidget(history, max_rate=4.0, budget=0.05, clock=clock, max_interval=10.0, background=False)
    assert monitor.interval == pytest.approx(0.3 / 0.05)
    start = monitor.redraws
    for step in range(1, 1001):  # 10 s of steps
        clock.now += 0.01
        history.record(step, loss=1.0)
    drawing = (monitor.redraws - start) * 0.3
    assert drawing <= 0.05 * (clock.now - 100.0) + 0.3


def test_slow_drawing_still_redraws_every_second_while_data_arrives(comms, monkeypatch):
    # A redraw costs 0.18 s: with the default 2.5 % budget that alone would
    # mean one redraw every 7 s, and the monitor would look frozen.
    clock, history = FakeClock(), History()
    real_plot = monitor_module.plot_training

    def slow_plot(*args, **kwargs):
        clock.now += 0.18
        return real_plot(*args, **kwargs)

    monkeypatch.setattr(monitor_module, "plot_training", slow_plot)
    history.record(0, loss=1.0)  # something to plot: an empty history draws a cheap placeholder
    monitor = TrainingMonitorWidget(history, clock=clock, background=False)
    assert monitor.interval == pytest.approx(1.0)
    start, began = monitor.redraws, clock.now
    for step in range(1, 501):  # 5 s of 10 ms steps (plus the drawing)
        clock.now += 0.01
        history.record(step, loss=1.0)
    elapsed = clock.now - began
    assert monitor.redraws - start >= int(elapsed / 1.2)


def test_draws_on_a_background_thread(comms, monkeypatch):
    threads = []
    real_plot = monitor_module.plot_training

    def recording_plot(*args, **kwargs):
        threads.append(threading.current_thread())
        return real_plot(*args, **kwargs)

    monkeypatch.setattr(monitor_module, "plot_training", recording_plot)
    history = History()
    history.record(0, loss=2.0)  # something to plot at creation (on the main thread)
    monitor = TrainingMonitorWidget(history, max_rate=20.0, background=True)
    history.record(1, loss=1.0)
    deadline = time.monotonic() + 10
    while monitor.redraws < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert monitor.redraws >= 2 and not monitor.pending
    assert threads[0] is threading.main_thread() and threads[-1] is not threading.main_thread()
    assert ">1<" in monitor.table.value
    monitor.close()
    monitor.pacer.wait_closed(5.0)
    assert not monitor.pacer.running


def test_a_named_run_may_start_later(comms):
    history = History()
    history.start_run("warm-up")
    monitor = TrainingMonitorWidget(history, run="main", background=False)
    assert "run &#x27;main&#x27; has not started yet" in monitor.table.value
    history.record(1, loss=3.0)  # the warm-up run's record: not shown
    history.start_run("main")
    history.record(1, loss=2.0)
    history.end_run()
    assert monitor.run == "main" and "main, step 1" in monitor.table.value and ">2<" in monitor.table.value


def show(widget, monkeypatch) -> list:
    """Display ``widget`` as a notebook would; return the list its output's updates go to."""
    import IPython.display

    updates = []

    class DisplayHandle:  # what IPython's display(..., display_id=True) returns
        def update(self, bundle, raw):
            updates.append(bundle)

    monkeypatch.setattr(IPython.display, "display", lambda *_objects, **_options: DisplayHandle())
    widget._ipython_display_()  # what display(widget) calls
    return updates


def test_without_a_run_the_monitor_keeps_the_one_current_when_made(comms, monkeypatch):
    history = History()
    first = TrainingMonitorWidget(history, background=False)  # no run yet: takes the first one started
    updates = show(first, monkeypatch)
    history.start_run("a")
    history.record(1, loss=1.0)
    history.end_run()
    second = TrainingMonitorWidget(history, background=False)
    assert first.run == "a" and second.run == "a"
    history.start_run("b")
    history.record(1, loss=0.5)
    history.end_run()
    # "b" neither took over the first monitor nor rewrote its saved output.
    assert first.run == "a" and "a, step 1" in first.table.value and len(updates) == 1


def test_end_of_run_redraws_and_updates_the_static_output(comms, monkeypatch):
    clock, history = FakeClock(), History()
    monitor = TrainingMonitorWidget(history, clock=clock, background=False)
    updates = show(monitor, monkeypatch)
    history.record(1, loss=2.0, metrics=metrics(1))
    history.record(2, loss=1.0)  # too soon: pending
    history.end_run()
    assert not monitor.pending and history.last("loss") == 1.0
    (bundle,) = updates
    assert set(bundle) == {"text/plain", "image/png", "application/vnd.jupyter.widget-view+json"}
    assert bundle["text/plain"] == monitor.text() == "Training monitor: run 'run1', 2 steps recorded, loss and 2 groups' metrics"
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == monitor.model_id


def test_following_a_file_draws_the_final_state_when_the_writer_ends(comms, tmp_path):
    clock = FakeClock()
    writer = History(path=tmp_path / "run.csv")
    follower = History.follow(tmp_path / "run.csv")
    monitor = TrainingMonitorWidget(follower, clock=clock, background=False)
    writer.record(1, loss=2.0)
    writer.record(2, loss=1.0)
    follower.refresh()  # too soon after the first drawing
    assert monitor.pending and monitor.redraws == 1
    writer.end_run()
    follower.refresh()
    assert monitor.redraws == 2 and not monitor.pending
    assert "0.5" not in monitor.table.value and ">1<" in monitor.table.value


def test_table_lists_groups_in_partition_order_with_their_colours(comms):
    history = History()
    history.start_run("r", {"labels": ["matrices", "vectors"]})
    history.record(7, loss=0.25, metrics=metrics(7))
    monitor = TrainingMonitorWidget(history)
    table = monitor.table.value
    assert table.index('data-group="matrices"') < table.index('data-group="vectors"') < table.index('data-group="total"') < table.index('data-group="-"')
    assert group_colour(1) in table and "r, step 7" in table and "0.25" in table
    assert "<th>update_ratio</th>" in table
    assert "no run recorded yet" in last_values_html(History())


def test_table_shows_a_dash_where_a_metric_does_not_apply(comms):
    history = History()
    history.start_run("r", {"labels": ["matrices", "vectors"]})
    history.record(7, loss=0.25, metrics={**metrics(7), "total": {"update_norm": 0.1, "learning_rate": float("nan")}})
    table = last_values_html(history)
    total = table.split('data-group="total"')[1].split("</tr>")[0]
    assert "nan" not in table.lower() and total.count("\u2013") == len(re.findall("<th>", table)) - 2


def test_css_classes_for_browser_tests(comms):
    monitor = TrainingMonitorWidget(History())
    assert "mol-monitor" in monitor._dom_classes
    assert "mol-monitor-figure" in monitor.image._dom_classes and "mol-monitor-table" in monitor.table._dom_classes


def test_close_stops_listening(comms):
    history = History()
    monitor = TrainingMonitorWidget(history)
    monitor.close()
    history.record(1, loss=1.0)
    assert monitor.redraws == 1


def test_bad_rates_are_refused(comms):
    with pytest.raises(ValueError, match="max_rate must be a finite number > 0"):
        TrainingMonitorWidget(History(), max_rate=0)
    with pytest.raises(ValueError, match="max_interval must be a finite number > 0"):
        TrainingMonitorWidget(History(), max_interval=0)
    with pytest.raises(ValueError, match="background drawing cannot use a theme"):
        TrainingMonitorWidget(History(), background=True, theme="dark")


class TestNotebookProgress:
    def test_stop_button_sets_the_flag(self, comms):
        stop = StopSignal()
        bar = NotebookProgress(10, stop, display_now=False)
        assert "mol-stop" in bar.stop_button._dom_classes and "mol-progress" in bar.box._dom_classes
        bar.stop_button.click()
        assert stop.requested and stop.reason == "Stop button" and bar.stop_button.disabled

    def test_label_is_throttled_and_close_shows_the_outcome(self, comms):
        clock, stop = FakeClock(), StopSignal()
        bar = NotebookProgress(4, stop, clock=clock, display_now=False, max_rate=10)
        clock.now += 1.0
        bar.update(1, 2.0)
        clock.now += 0.01
        bar.update(2, 1.5)
        assert bar.label.value == f"1/4 · loss 2.0000 · 0:01 < 0:03 · {describe_device()}"
        assert bar.bar.value == 1
        stop.request("Stop button")
        bar.close()
        assert bar.bar.value == 2 and bar.bar.bar_style == "warning" and "stopped (Stop button)" in bar.label.value
        assert bar.stop_button.description == "Stopped" and bar.stop_button.disabled

    def test_stop_button_says_stopping_then_stopped(self, comms):
        stop = StopSignal()
        bar = NotebookProgress(10, stop, display_now=False)
        bar.stop_button.click()
        assert bar.stop_button.description == "Stopping…"
        bar.update(3, 1.0)
        bar.close()  # the loop reached the step boundary and ended the run
        assert bar.stop_button.description == "Stopped" and bar.stop_button.disabled

    def test_a_finished_run_says_done(self, comms):
        bar = NotebookProgress(2, StopSignal(), display_now=False)
        bar.update(2, 1.0)
        bar.close()
        assert bar.stop_button.description == "Done" and bar.stop_button.disabled and bar.bar.bar_style == "success"

    def test_no_subshell_outside_a_kernel(self, comms):
        bar = NotebookProgress(3, StopSignal(), display_now=False)
        assert route_to_subshell(bar.stop_button) is False and bar.live_stop is False


SETUP_CELL = """
import time
import mlx.optimizers as optim
from multiopt_lab import examples
from multiopt_lab import History
from multiopt_lab import MultiOptimizer
from multiopt_lab import train
from multiopt_lab import TrainingMonitorWidget
data = examples.digits()
"""

TRAIN_CELL = """
model = examples.MLP(64, 32, 10)
optimizer = MultiOptimizer([optim.Adam(1e-2), optim.SGD(0.1)], ["ndim == 2"], labels=["matrices", "vectors"])
history = History()
monitor = TrainingMonitorWidget(history)
display(monitor)
train(model, optimizer, data.loss_fn, data.batch, 2000, history=history, callbacks=[lambda *a: time.sleep(0.01)])
print("RESULT", history.last_step(), history.is_finished(), flush=True)
"""


def run_cell(client, code, when_training):
    """Run ``code``; once its Stop button exists and a second has passed, call ``when_training(comm_id)``.

    Returns the words of the line the cell printed after ``RESULT`` and the
    display messages (kind, mime types) it sent.
    """
    msg_id = client.execute(code)
    stop_comm, acted, result, outputs = None, False, None, []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            msg = client.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            msg = None
        if msg is not None:
            kind, content = msg["msg_type"], msg["content"]
            if kind in ("comm_open", "comm_msg") and "mol-stop" in content["data"].get("state", {}).get("_dom_classes", []):
                stop_comm = content["comm_id"]  # add_class() arrives as an update after the open
            elif msg["parent_header"].get("msg_id") != msg_id:
                continue
            elif kind in ("display_data", "update_display_data"):
                outputs.append((kind, set(content["data"])))
            elif kind == "stream" and "RESULT" in content["text"]:
                # train()'s "Training stopped ..." line may share the message (both on stdout).
                result = next(line for line in content["text"].splitlines() if line.startswith("RESULT")).split()[1:]
            elif kind == "error":
                pytest.fail("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                return result, outputs
        if stop_comm and not acted:
            time.sleep(1.0)  # let it train a little
            when_training(stop_comm)
            acted = True
    pytest.fail("the cell did not finish in 90 s")


@pytest.mark.slow
def test_stop_button_and_interrupt_stop_training_in_a_real_kernel():
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=60)
    try:
        run_cell(client, SETUP_CELL, lambda comm_id: None)

        def click(comm_id):  # what JupyterLab sends when Stop is clicked
            content = {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
            client.shell_channel.send(client.session.msg("comm_msg", content))

        (steps, finished), outputs = run_cell(client, TRAIN_CELL, click)
        assert 0 < int(steps) < 2000 and finished == "True"
        # The output keeps a PNG of the final state for viewers without widgets.
        assert ("update_display_data", {"text/plain", "image/png", "application/vnd.jupyter.widget-view+json"}) in outputs

        (steps, finished), _ = run_cell(client, TRAIN_CELL, lambda comm_id: manager.interrupt_kernel())
        assert 0 < int(steps) < 2000 and finished == "True"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
