"""What a saved notebook shows for each widget without a kernel: the text and HTML (or PNG) forms
in the widget's mime bundle, next to the widget view."""

from __future__ import annotations

import base64

import mlx.optimizers as optim
import pytest

from multiopt_lab import (
    History, LabWidget, MultiOptimizer, ParameterTreeWidget, RuleEditorWidget,
    TrainingMonitorWidget, render_html,
)
from multiopt_lab.examples import MLP

pytestmark = pytest.mark.usefixtures("recorded_comm")

VIEW = "application/vnd.jupyter.widget-view+json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def setup():
    model = MLP(8, [8], 4)
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ['ndim == 2 and not glob("head.*")'],
                               labels=["muon", "adamw"])
    return model, optimizer


def trained_history():
    history = History()
    history.start_run("demo", {"labels": ["muon", "adamw"], "backend": "cpu", "device_name": "Test CPU"})
    for step in range(1, 6):
        history.record(step, loss=1 / step, metrics={
            "muon": {"update_norm": 0.1, "update_ratio": 1e-2, "learning_rate": 0.02},
            "adamw": {"update_norm": 0.2 / step, "update_ratio": 1e-3, "learning_rate": 1e-3}})
    history.end_run()
    return history


def test_tree_bundle_holds_the_text_tree_and_the_static_html(setup):
    tree = ParameterTreeWidget(*setup)
    bundle = tree._repr_mimebundle_()
    assert bundle[VIEW]["model_id"] == tree.model_id
    assert bundle["text/plain"] == tree.text()
    assert bundle["text/plain"].splitlines()[0].startswith("group ")
    assert "MLP " in bundle["text/plain"] and "ParameterTreeWidget(" not in bundle["text/plain"]
    assert bundle["text/html"] == render_html(tree.assignment, setup[1], root_name="MLP")
    assert bundle["text/html"].startswith('<div class="mol-root">')  # not the widget's interactive form


def test_tree_bundle_shows_the_search_as_it_stands(setup):
    tree = ParameterTreeWidget(*setup, search_debounce=0)
    tree.search_box.value = "*.bias"
    bundle = tree._repr_mimebundle_()
    assert "<- match" in bundle["text/plain"] and "mol-match" in bundle["text/html"]


def test_editor_bundle_lists_the_rules_the_preview_and_its_own_tree(setup):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    editor.inputs["muon"].value = "ndim == 2"
    text = editor._repr_mimebundle_()["text/plain"]
    assert text.splitlines()[:2] == [
        "Rules (first match wins; the last group takes the rest):",
        "  muon   ndim == 2",
    ]
    # Muon now takes the MLP's output head: the finding sits under the rule, then the fallback.
    lines = text.splitlines()
    assert lines[2].startswith("         ! warning: Muon on the output head (1): head.weight")
    fallback = lines.index("  adamw  (fallback)")  # after the warning, wrapped within 100 columns
    assert fallback > 2 and all(line.startswith(" " * 11) for line in lines[3:fallback])
    assert all(len(line) <= 100 for line in lines)
    assert "would move: 1 parameter, 32 elements: adamw -> muon" in text
    assert editor.tree.text() in text
    html = editor._repr_mimebundle_()["text/html"]
    assert "ndim == 2" in html and 'class="mol-tree' in html and "adamw -&gt; muon" in html


def test_monitor_bundle_holds_the_last_figure_and_says_what_it_shows():
    history = trained_history()
    monitor = TrainingMonitorWidget(history)
    bundle = monitor._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)
    assert bundle["text/plain"] == "Training monitor: run 'demo', 5 steps recorded, loss and 2 groups' metrics"
    assert VIEW in bundle


def test_an_empty_monitor_says_it_waits():
    monitor = TrainingMonitorWidget(History())
    assert monitor._repr_mimebundle_()["text/plain"] == "Training monitor: waiting for a run to record its first step"


def test_lab_bundle_holds_rules_monitor_figure_and_tree(setup):
    model, optimizer = setup
    lab = LabWidget(model, optimizer, trained_history())
    bundle = lab._repr_mimebundle_()
    text = bundle["text/plain"]
    assert text.startswith("Rules (first match wins") and lab.tree.text() in text
    assert "Training monitor: run 'demo'" in text and "LabWidget(" not in text
    html = bundle["text/html"]
    assert 'class="mol-tree' in html and '<img class="mol-monitor-png" src="data:image/png;base64,' in html
    assert VIEW in bundle
