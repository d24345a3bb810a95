# Tests the private modules' own units: multiopt_lab._src.optimizer_file.as_data,
#   multiopt_lab._src.optimizer_file.save_load, multiopt_lab._src.palette.
"""RuleEditorWidget without a browser: type rules, click buttons, check what the kernel sends."""

from __future__ import annotations

import asyncio
import threading
from html import escape as html_escape

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_flatten

from multiopt_lab import MultiOptimizer, RuleEditorWidget
from multiopt_lab._src.palette import group_colour
from multiopt_lab.examples import MLP
import sys

from multiopt_lab import load_optimizer, load_rules
from multiopt_lab.__main__ import main as cli_main
from multiopt_lab._src.optimizer_file.as_data import optimizer_to_data
from multiopt_lab._src.optimizer_file.save_load import optimizer_file_text
from widget_comm import copy_click, sent, click


pytestmark = pytest.mark.usefixtures("recorded_comm")


def group_in_tree(editor, path):
    html = editor.tree.view.html
    start = html.index(f'data-path="{path}" data-group="')
    return html[start:].split('data-group="')[1].split('"')[0]


def state_paths(state):
    """Parameter paths holding per-parameter state in one group's state tree."""
    return {path.rsplit(".", 1)[0] for path, _ in tree_flatten(state) if path not in ("step", "learning_rate")}


def train_step(model, optimizer):
    x = mx.ones((2, 8))

    def loss(m):
        return (m(x) ** 2).mean()

    _, grads = nn.value_and_grad(model, loss)(model)
    optimizer.update(model, grads)
    mx.eval(model.parameters(), optimizer.state)


@pytest.fixture
def setup():
    model = MLP(8, [8, 8], 4)
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ['ndim == 2 and not glob("head.*")'])
    return model, optimizer


def test_typing_recolours_the_tree_and_previews_the_moves(setup):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    assert group_in_tree(editor, "head.weight") == "adamw"
    assert editor.apply_button.disabled
    editor.inputs["muon"].set_state({"value": "ndim == 2"})
    assert group_in_tree(editor, "head.weight") == "muon"
    assert sent(editor.preview, "value")[-1] == (
        '<pre class="mol-preview-text">1 parameter, 32 elements: adamw -&gt; muon</pre>')
    assert sent(editor.apply_button, "disabled")[-1] is False
    assert optimizer.filters[0].text == 'ndim == 2 and not glob("head.*")'  # nothing applied yet


def test_parse_error_shows_caret_and_keeps_the_last_good_assignment(setup):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    editor.inputs["muon"].set_state({"value": "ndim >= 1"})
    html_before = editor.tree.view.html
    editor.inputs["muon"].set_state({"value": "ndim >= 1 and glob(embed)"})
    error = sent(editor.errors["muon"], "value")[-1]
    assert error == ('<pre class="mol-error-text" style="color: var(--jp-error-color1, #D32F2F); margin: 0">'
                     'expected a string, e.g. glob(&quot;*.weight&quot;)\n'
                     '  ndim &gt;= 1 and glob(embed)\n' + " " * 21 + "^</pre>")
    assert editor.tree.view.html == html_before
    assert "Fix the error above" in sent(editor.preview, "value")[-1]
    assert sent(editor.apply_button, "disabled")[-1] is True
    editor.apply()
    assert "Not applied" in editor.status.value and optimizer.filters[0].text.startswith("ndim == 2")
    editor.inputs["muon"].set_state({"value": "ndim >= 1"})
    assert sent(editor.errors["muon"], "value")[-1] == ""


def test_a_rule_failing_on_a_parameter_is_reported_under_its_field(setup):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    editor.inputs["muon"].set_state({"value": "shape[1] == 8"})
    assert "rule failed on" in sent(editor.errors["muon"], "value")[-1]


def test_apply_repartitions_the_optimizer_and_keeps_training(setup):
    model, optimizer = setup
    train_step(model, optimizer)
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    editor.inputs["muon"].set_state({"value": "ndim == 2"})
    click(editor.apply_button)
    assert optimizer.assign(model).labels["head.weight"] == "muon"
    assert sent(editor.status, "value")[-1] == "Applied: 1 parameter, 32 elements: adamw -&gt; muon."
    muon_state = state_paths(optimizer.state["states"][0])
    assert "head.weight" in muon_state and "head.bias" not in muon_state
    assert editor.apply_button.disabled and "nothing to do" in editor.preview.value
    train_step(model, optimizer)
    assert int(optimizer.step.item()) == 2


def test_revert_restores_the_optimizer_rules(setup):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    editor.inputs["muon"].set_state({"value": "ndim == 1"})
    assert group_in_tree(editor, "head.bias") == "muon"
    click(editor.revert_button)
    assert sent(editor.inputs["muon"], "value")[-1] == 'ndim == 2 and not glob("head.*")'
    assert group_in_tree(editor, "head.bias") == "adamw"
    assert f"--mol-c:{group_colour(1)}" in editor.tree.view.html


def test_copy_out_as_python_and_toml(setup, tmp_path):
    editor = RuleEditorWidget(setup[0], setup[1], debounce_seconds=0)
    copy_click(editor.python_button)
    code = sent(editor.exported, "value")[-1]
    assert "labels = ['muon', 'adamw']" in code and "'ndim == 2 and not glob(\"head.*\")',  # labels[0]" in code
    assert "Copied the Python code to the clipboard" in editor.status_text
    namespace = {}
    exec(code, namespace)  # the pasted code builds the same optimizer
    assert [optimizer_to_data(o) for o in namespace["optimizer"].optimizers] == \
        [optimizer_to_data(o) for o in setup[1].optimizers]
    copy_click(editor.toml_button)
    toml = sent(editor.exported, "value")[-1]
    assert toml == editor.toml_button.text == optimizer_file_text(setup[1])
    assert "Copied the rule file (TOML) to the clipboard" in editor.status_text


def test_the_toml_export_loads_with_load_rules_load_optimizer_and_the_cli(setup, tmp_path, monkeypatch, capsys):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    (tmp_path / "exported.toml").write_text(editor.toml_button.text)  # what a click copies
    labels, rules = load_rules(tmp_path / "exported.toml")
    assert labels == ["muon", "adamw"] and rules[0].text == 'ndim == 2 and not glob("head.*")'
    loaded = load_optimizer(tmp_path / "exported.toml", model)
    assert [optimizer_to_data(o) for o in loaded.optimizers] == [optimizer_to_data(o) for o in optimizer.optimizers]
    (tmp_path / "mlp_factory.py").write_text(
        "from multiopt_lab.examples import MLP\ndef make():\n    return MLP(8, [8, 8], 4)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert cli_main(["check", "exported.toml", "--model", "mlp_factory:make"]) == 0
    assert "check passed" in capsys.readouterr().out


def test_a_refused_clipboard_leaves_the_text_to_select(setup):
    editor = RuleEditorWidget(setup[0], setup[1], debounce_seconds=0)
    copy_click(editor.toml_button, "refused", "Write permission denied.")
    assert sent(editor.exported, "value")[-1] == editor.toml_button.text
    assert editor.exported.layout.display is None
    assert editor.status_text == ("The browser kept the clipboard closed (Write permission denied.): the rule "
                                  "file (TOML) is below; select it and copy it.")


def test_what_cannot_be_copied_is_said_naming_the_group(setup):
    model, _ = setup

    def is_matrix(path, array):
        return array.ndim == 2

    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(lambda step: 1e-3)], [is_matrix],
                               labels=["muon", "adamw"])
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    assert editor.toml_button.text == ""
    copy_click(editor.toml_button, "empty")
    assert editor.status_text.startswith("Not all could be written: cannot save group 'muon': its rule is a "
                                         "Python callable")
    copy_click(editor.python_button)
    code = sent(editor.exported, "value")[-1]
    assert "    is_matrix,  # labels[0]: a Python callable, define it above" in code
    assert "    None,  # labels[1]: this optimizer cannot be written as code; put it here" in code
    assert "group 'adamw': its learning_rate is a schedule a file cannot hold" in editor.status_text


def test_an_empty_field_keeps_a_python_callable(setup):
    model, _ = setup

    def is_matrix(path, array):
        return array.ndim == 2

    optimizer = MultiOptimizer([optim.SGD(0.1), optim.AdamW(1e-3)], [is_matrix])
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    assert editor.inputs["sgd"].value == "" and "is_matrix" in editor.inputs["sgd"].placeholder
    editor.inputs["sgd"].set_state({"value": "ndim == 1"})
    editor.inputs["sgd"].set_state({"value": ""})
    assert editor.errors["sgd"].value == "" and editor.apply_button.disabled


def test_typing_is_debounced(setup):
    model, optimizer = setup

    async def scenario():
        editor = RuleEditorWidget(model, optimizer, debounce_seconds=0.05)
        editor.inputs["muon"].set_state({"value": "ndim == "})
        editor.inputs["muon"].set_state({"value": "ndim == 1"})
        assert editor.errors["muon"].value == "" and group_in_tree(editor, "head.bias") == "adamw"
        await asyncio.sleep(0.15)
        return editor

    editor = asyncio.run(scenario())
    assert group_in_tree(editor, "head.bias") == "muon"


def test_apply_while_training_runs_in_another_thread_takes_effect_between_steps(setup):
    model, optimizer = setup
    train_step(model, optimizer)
    stop, failures, steps = threading.Event(), [], []

    def training():
        try:
            while not stop.is_set():
                train_step(model, optimizer)
                steps.append(optimizer.assign(model).labels["head.weight"])
        except Exception as err:  # reported below
            failures.append(err)

    async def scenario():
        editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
        editor.applier.idle_seconds = 30  # training is running: never apply from this thread
        thread = threading.Thread(target=training)
        thread.start()
        try:
            editor.inputs["muon"].set_state({"value": "ndim == 2"})
            click(editor.apply_button)
            for _ in range(200):
                await asyncio.sleep(0.02)
                if editor.status.value.startswith("Applied"):
                    break
        finally:
            stop.set()
            thread.join()
        return editor

    editor = asyncio.run(scenario())
    assert not failures and editor.status.value.startswith("Applied: 1 parameter")
    assert editor.applier.pending.moves and steps[-1] == "muon"
    muon_state = state_paths(optimizer.state["states"][0])
    adamw_state = state_paths(optimizer.state["states"][1])
    assert "head.weight" in muon_state and "head.weight" not in adamw_state


def test_an_apply_taken_by_a_training_cell_reads_as_applied_before_the_event_loop_runs(setup):
    # Tutorial 07: a callback applies mid-run on the kernel's main thread, the
    # training loop takes the request at its next step, and the next cell prints
    # the status before the event loop (which polls the request) ever ran.
    model, optimizer = setup

    async def scenario():
        editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
        editor.inputs["muon"].set_state({"value": "ndim == 2"})
        editor.apply()  # an event loop runs: the request waits for the next step
        assert not editor.applier.pending.done
        train_step(model, optimizer)  # the loop's next step applies it; no await: the loop never ran
        return editor.status_text, editor.text(), editor.static_html(), editor

    status, text, html, editor = asyncio.run(scenario())
    assert status.startswith("Applied: 1 parameter"), status
    assert status in text and "Applied: 1 parameter" in html and "rules as applied; nothing to do" in text
    # Reported once: the event loop's own poll, once it ran, found it reported.
    assert [line for line in sent(editor.status, "value") if line.startswith("Applied")] == [html_escape(status)]


def test_follows_a_repartition_made_elsewhere(setup):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    optimizer.repartition(["ndim == 1"], model)
    assert editor.tree.watcher.check()  # what the kernel-loop poll does every second
    assert editor.inputs["muon"].value == "ndim == 1"
    assert group_in_tree(editor, "head.bias") == "muon" and editor.apply_button.disabled
    editor.inputs["muon"].set_state({"value": "ndim == 2"})  # an edit in progress is kept
    optimizer.repartition(["ndim >= 1"], model)
    editor.tree.watcher.check()
    assert editor.inputs["muon"].value == "ndim == 2"
    # The preview now compares with ndim >= 1: the three biases would go back.
    assert "3 parameters, 20 elements: muon -&gt; adamw" in editor.preview.value


def test_groups_changed_elsewhere_disable_the_editor(setup):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    optimizer.repartition(["ndim == 2", "ndim == 1"], model, optimizers=[optim.SGD(0.1), optim.Adam(0.1), optim.AdamW(0.1)])
    editor.tree.watcher.check()
    assert editor.apply_button.disabled and "groups changed" in editor.status.value


def test_dead_shadowed_and_fallback_notes_sit_under_their_rules(setup):
    model, _ = setup
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.SGD(0.1), optim.AdamW(1e-3)], ["ndim == 2", "ndim == 4"])
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    assert "error: dead rule: matches nothing" in editor.warnings["sgd"].value
    # Muon took the output head: its authors' advice is under the rule, with the fix.
    assert "warning: Muon on the output head (1): head.weight; fix: add `and not glob(" in \
        editor.warnings["muon"].value.replace("&quot;", '"')
    # What no rule matched is the fallback's job: no warning on its row (issue 15).
    assert editor.warnings["adamw"].value == ""
    editor.inputs["sgd"].set_state({"value": "glob('head.weight')"})
    assert "error: shadowed: earlier rules took all it matches" in sent(editor.warnings["sgd"], "value")[-1]


def test_typing_a_rule_that_gives_muon_vectors_shows_the_error_and_its_fix(setup):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    assert editor.warnings["muon"].value == ""
    editor.inputs["muon"].set_state({"value": 'not glob("head.*")'})  # the biases too
    shown = sent(editor.warnings["muon"], "value")[-1]
    assert "! error: Muon below 2-D (2): layers.0.bias, layers.1.bias; fix: add `and ndim &gt;= 2`" in shown


def test_needs_a_multiopt_lab_optimizer(setup):
    with pytest.raises(TypeError, match="RuleEditorWidget edits a multiopt_lab MultiOptimizer, got MultiOptimizer"):
        RuleEditorWidget(optim.MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], [lambda p, a: True]), setup[0])



def test_editor_does_not_keep_the_parameters_it_was_built_on_alive(setup):
    import gc
    import weakref

    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    refs = [weakref.ref(p) for _, p in tree_flatten(model.trainable_parameters())]
    gc.collect()
    gc.disable()
    try:
        for _ in range(2):  # training replaces every parameter
            train_step(model, optimizer)
        assert [r for r in refs if r() is not None] == []
    finally:
        gc.enable()
    editor.inputs["muon"].set_state({"value": "ndim == 2"})  # still previews from the shapes
    assert editor.errors["muon"].value == ""
    assert "adamw -&gt; muon" in sent(editor.preview, "value")[-1]


def test_module_rules_typed_and_applied_with_the_model(setup):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    editor.inputs["muon"].set_state({"value": 'within("MLP") and module == "Linear" and ndim == 2 '
                                              'and not glob("head.*")'})
    assert not editor.errors["muon"].value and group_in_tree(editor, "layers.0.weight") == "muon"
    editor.inputs["muon"].set_state({"value": 'modul == "Linear"'})
    assert "did you mean &#x27;module&#x27;?" in sent(editor.errors["muon"], "value")[-1]
    editor.inputs["muon"].set_state({"value": 'module == "Linaer"'})
    assert "did you mean &#x27;Linear&#x27;?" in sent(editor.warnings["muon"], "value")[-1]


def test_a_module_rule_without_the_model_is_an_inline_error():
    model = MLP(8, [8], 4)
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"])
    editor = RuleEditorWidget(model.parameters(), optimizer, debounce_seconds=0)
    editor.inputs["muon"].set_state({"value": 'module == "Linear"'})
    assert "pass the model" in sent(editor.errors["muon"], "value")[-1]
    assert editor.apply_button.disabled
def test_takes_model_then_optimizer_like_every_widget(setup):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    assert editor.model is model and editor.optimizer is optimizer


def test_the_swapped_order_is_refused_naming_the_right_one(setup):
    # Issue 28: the old (optimizer, model) order of a 0.1 package is no longer accepted.
    model, optimizer = setup
    with pytest.raises(TypeError, match=r"found the optimizer first.*pass "
                                        r"RuleEditorWidget\(model, optimizer\)"):
        RuleEditorWidget(optimizer, model, debounce_seconds=0)


def test_the_exported_rules_follow_an_apply(setup):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    copy_click(editor.toml_button)
    editor.inputs["muon"].set_state({"value": "ndim == 2"})
    click(editor.apply_button)
    exported = sent(editor.exported, "value")[-1]
    assert "rule = 'ndim == 2'" in exported and "head" not in exported
    assert sent(editor.toml_button, "text")[-1] == exported  # the next click copies the new rules


def test_a_line_break_in_a_rule_field_reads_as_a_space(setup):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    editor.inputs["muon"].set_state({"value": "ndim == 2 and\nnot glob(\"head.*\")"})
    assert editor.errors["muon"].value == "" and not editor.draft.changed
    editor.inputs["muon"].set_state({"value": "ndim == 2\n"})
    click(editor.apply_button)
    assert optimizer.filters[0].text == "ndim == 2"


def test_the_copy_text_follows_a_change_the_watcher_thread_sees(setup):
    model, optimizer = setup
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    optimizer.repartition(["ndim == 1"], model)  # code elsewhere changes the rules
    # The tree's watcher calls the editor on its own thread: no MLX stream of the kernel's there.
    watcher = threading.Thread(target=editor._on_optimizer_changed)
    watcher.start()
    watcher.join()
    assert "rule = 'ndim == 1'" in editor.toml_button.text
    assert "'ndim == 1',  # labels[0]" in editor.python_button.text
