# Tests the private module multiopt_lab._src.widgets.lab's own unit.
"""LabWidget without a browser: editor, tree and monitor wired together."""

from __future__ import annotations

import subprocess
import sys

import mlx.optimizers as optim
import pytest

from multiopt_lab import History, LabWidget, MultiOptimizer
from multiopt_lab.examples import MLP
from widget_comm import sent


pytestmark = pytest.mark.usefixtures("recorded_comm")


@pytest.fixture
def setup():
    model = MLP(8, [8], 4)
    return model, MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"])


def test_editor_drives_the_tree_beside_it(setup):
    model, optimizer = setup
    lab = LabWidget(model, optimizer, debounce_seconds=0)
    assert lab.editor.tree is lab.tree and lab.monitor is None
    assert list(lab.grid.children) == [lab.editor, lab.tree] and "mol-lab" in lab._dom_classes
    lab.editor.inputs["muon"].set_state({"value": "ndim == 1"})
    assert 'data-path="head.bias" data-group="muon"' in sent(lab.tree.view, "html")[-1]
    lab.editor.apply_button._handle_custom_msg({"event": "click"}, [])
    assert optimizer.assign(model).labels["head.bias"] == "muon"


def test_side_by_side_from_the_lab_s_own_width_stacked_below(setup):
    from multiopt_lab._src.widgets.lab import LAB_CSS, SIDE_BY_SIDE_PX

    lab = LabWidget(*setup, debounce_seconds=0)
    assert "mol-lab-grid" in lab.grid._dom_classes
    # A container query: the notebook's width decides, not the window's.
    assert f"@container mol-lab (min-width: {SIDE_BY_SIDE_PX}px)" in LAB_CSS
    assert '"editor tree" "monitor monitor"' in LAB_CSS and '"editor" "tree" "monitor"' in LAB_CSS
    # No area is set inline (an inline style would beat the query).
    assert all(child.layout.grid_area is None for child in lab.grid.children)


def test_with_a_history_the_monitor_comes_last(setup):
    history = History()
    history.record(1, loss=2.0, metrics={"muon": {"update_norm": 0.1}, "adamw": {"update_norm": 0.2}})
    lab = LabWidget(*setup, history)
    assert lab.monitor is not None and list(lab.grid.children) == [lab.editor, lab.tree, lab.monitor]
    assert "mol-monitor" in lab.monitor._dom_classes


def test_the_widgets_layer_loads_matplotlib_only_for_the_monitor():
    code = ("import sys; import multiopt_lab._src.widgets.lab, multiopt_lab._src.render.document; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_saved_output_follows_the_run_s_end_and_an_apply(setup, monkeypatch):
    # Tutorial 07: the lab is displayed, then trained; a saved notebook must show it after the run.
    from test_monitor import show

    model, optimizer = setup
    history = History()
    lab = LabWidget(model, optimizer, history, debounce_seconds=0)
    updates = show(lab, monkeypatch)
    history.record(1, loss=2.0, metrics={"muon": {"update_norm": 0.1}, "adamw": {"update_norm": 0.2}})
    history.end_run()
    assert updates, "the end of the monitor's run did not update the lab's output"
    assert "Training monitor: run 'run1', 1 steps recorded" in updates[-1]["text/plain"]
    assert 'class="mol-monitor-png"' in updates[-1]["text/html"]
    lab.editor.inputs["muon"].set_state({"value": "ndim == 1"})
    lab.editor.apply()
    assert "Applied:" in updates[-1]["text/plain"] and "muon   ndim == 1" in updates[-1]["text/plain"]
    count = len(updates)
    lab.close()
    history.start_run("later")
    history.end_run()
    assert len(updates) == count  # a closed lab no longer listens
