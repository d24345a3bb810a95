"""Training in JupyterLab: the monitor redraws while a cell trains, Stop ends the run early.

Both tests run a cell that trains a small TinyGPT with
``multiopt_lab._src.training.train.train`` and act while the kernel is busy with it:
what they check can only happen mid-cell.
"""

import re
import time

import pytest

from lab_page import (cell_locator, error_outputs, open_notebook, run_all, run_new_cell, start_run_all,
                      wait_for_run_all)
from screens import wait_until_looks_different
from test_widgets_in_lab import KERNEL_MS, widen

pytestmark = pytest.mark.browser
# Without Playwright the harness skips (or, in CI, fails) every browser test; do not crash collection.
expect = pytest.importorskip("playwright.sync_api").expect

STEPS_SHOWN, STEPS_STOPPED = 200, 3000

# Muon on the attention matrices at first; the edit the tests type in the editor adds the
# MLP's, written by module class as recipes.muon writes it. Neither sends an embedding to
# Muon, which train() would rightly warn about on stderr.
FIRST_RULE = 'ndim == 2 and glob("*.attn.*")'
EDITED_RULE = 'within("Block") and module == "Linear" and ndim == 2'

SETUP = f"""\
import mlx.optimizers as optim
from multiopt_lab import examples
from multiopt_lab import History
from multiopt_lab import MultiOptimizer
from multiopt_lab import train

task = examples.sequence_task("reverse", length=4, batch_size=16)
model = examples.TinyGPT(task.vocab_size, dims=32, layers=2, heads=2, max_length=8)
optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(3e-3)], [{FIRST_RULE!r}], labels=["muon", "adamw"])
history = History()"""

LAB_CELL = """\
from multiopt_lab import LabWidget
lab = LabWidget(model, optimizer, history)
# A figure takes about 0.2 s to draw on the 2-core test machine: the default
# budget (2.5 % of the time spent drawing) would redraw only every ~7 s.
lab.monitor.budget = 0.25
lab"""

TRAIN_CELL = f"""\
import time
# Paced to at least 15 ms a step, so the run lasts seconds on a fast machine too.
train(model, optimizer, task.loss_fn, task.batch, {STEPS_SHOWN}, history=history, metrics_every=5,
      callbacks=[lambda *_: time.sleep(0.015)])
print("steps done:", history.last_step())"""

TRAIN_UNTIL_STOPPED = f"history = train(model, optimizer, task.loss_fn, task.batch, {STEPS_STOPPED}, metrics_every=None)"
REPORT_STEPS = 'print("steps done:", history.last_step())'


def steps_shown(progress) -> int:
    """The step a progress bar's label shows (``"42/300 · loss ..."`` -> 42)."""
    found = re.match(r"\s*(\d+)/\d+", progress.locator("div.widget-label").inner_text())
    return int(found.group(1)) if found else 0


def wait_for_step(progress, step: int, timeout_ms: int = 60_000) -> None:
    """Wait until the progress bar ``progress`` shows at least ``step`` steps done."""
    progress.wait_for(timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    while steps_shown(progress) < step:
        assert time.monotonic() < deadline, f"training never reached step {step} in {timeout_ms / 1000:.0f} s"
        progress.page.wait_for_timeout(100)


def still_running(cell) -> bool:
    """Whether ``cell`` (the last one, so not queued) is still executing: its prompt says ``[*]``."""
    return cell.locator(".jp-InputPrompt").inner_text().strip() == "[*]:"


def test_monitor_redraws_while_training_runs(page, scratch_notebook, screenshot):
    widen(page, 1900)
    open_notebook(page, scratch_notebook("monitor_in_lab.ipynb", [SETUP, LAB_CELL, TRAIN_CELL]))
    start_run_all(page)
    lab, training = cell_locator(page, 2).locator(".mol-lab"), cell_locator(page, 3)
    figure = lab.locator(".mol-monitor .mol-monitor-figure")
    wait_for_step(training.locator(".mol-progress"), 1)
    # Two redraws in a row while the cell still runs: the figure is live, not drawn once at the end.
    for _ in range(2):
        seen = wait_until_looks_different(figure, figure.screenshot(animations="disabled"))
        assert still_running(training), "the figure changed only after training ended"
    step_then = steps_shown(training.locator(".mol-progress"))
    assert 0 < step_then < STEPS_SHOWN
    screenshot(figure, "monitor")

    wait_for_run_all(page, timeout_ms=120_000)
    assert training.locator(".jp-OutputArea-output").last.inner_text().strip() == f"steps done: {STEPS_SHOWN}"
    expect(lab.locator(".mol-monitor-table caption")).to_contain_text(f"step {STEPS_SHOWN}", timeout=KERNEL_MS)
    assert lab.locator(".mol-monitor-table tr[data-group]").evaluate_all(
        "rows => rows.map(r => r.dataset.group)")[:2] == ["muon", "adamw"]
    # The end of a run always redraws: the last picture is not the mid-run one.
    assert figure.screenshot(animations="disabled") != seen
    expect(training.locator(".mol-progress div.widget-label")).to_contain_text(f"{STEPS_SHOWN}/{STEPS_SHOWN}")
    screenshot(lab, "lab")
    assert error_outputs(page) == []


def test_stop_button_ends_training_mid_cell(page, scratch_notebook, screenshot):
    open_notebook(page, scratch_notebook("stop_in_lab.ipynb", [SETUP, TRAIN_UNTIL_STOPPED, REPORT_STEPS]))
    start_run_all(page)
    training = cell_locator(page, 2)
    progress = training.locator(".mol-progress")
    wait_for_step(progress, 20)
    stop = progress.locator(".mol-stop")
    expect(stop).to_be_enabled()
    stop.click()
    # The click is handled on a kernel subshell while the cell still runs.
    # "Stopping…" until the loop reaches the step boundary, "Stopped" once the run ended:
    # the first may last only milliseconds.
    expect(stop).to_have_text(re.compile("Stopping…|Stopped"), timeout=KERNEL_MS)

    wait_for_run_all(page, timeout_ms=120_000)
    printed = cell_locator(page, 3).locator(".jp-OutputArea-output").inner_text().strip()
    done = int(re.fullmatch(r"steps done: (\d+)", printed).group(1))
    assert 20 <= done < STEPS_STOPPED
    expect(progress.locator("div.widget-label")).to_contain_text(f"{done}/{STEPS_STOPPED}")
    expect(progress.locator("div.widget-label")).to_contain_text("stopped (Stop button)")
    expect(stop).to_be_disabled()
    expect(stop).to_have_text("Stopped")
    screenshot(progress, "progress-stopped")
    # train() says on stdout that it stopped early: a stop the user asked for is no error output.
    expect(training.locator(".jp-OutputArea-output").last).to_contain_text(
        f"Training stopped after {done} of {STEPS_STOPPED} steps (Stop button); the history keeps them.")
    assert error_outputs(page) == []


STEPS_EDITED = 400
TRAIN_WHILE_EDITED = f"""\
import time
moved_at = []
def watch(step, loss, history):
    # The first step that ran under the rule typed in the editor.
    if not moved_at and optimizer.filters[0].text == {EDITED_RULE!r}:
        moved_at.append(step)
    time.sleep(0.02)  # paced, so the run lasts seconds on a fast machine too
train(model, optimizer, task.loss_fn, task.batch, {STEPS_EDITED}, history=history,
      metrics_every=None, callbacks=[watch])
print("moved at step", moved_at[0] if moved_at else None, "of", history.last_step())"""


def test_editor_applies_a_rule_mid_cell(page, scratch_notebook):
    widen(page, 1900)
    open_notebook(page, scratch_notebook("edit_in_lab.ipynb", [SETUP, LAB_CELL, TRAIN_WHILE_EDITED]))
    start_run_all(page)
    editor = cell_locator(page, 2).locator(".mol-lab .mol-rule-editor")
    training = cell_locator(page, 3)
    wait_for_step(training.locator(".mol-progress"), 20)

    # Typing is handled while the cell trains: the preview follows at once.
    editor.locator(".mol-rule-input textarea").fill(EDITED_RULE)
    expect(editor.locator(".mol-preview")).to_contain_text("adamw -> muon", timeout=KERNEL_MS)
    editor.locator(".mol-apply").click()
    expect(editor.locator(".mol-status")).to_contain_text("Applied", timeout=KERNEL_MS)
    assert still_running(training), "the edit was applied only after training ended"

    wait_for_run_all(page, timeout_ms=120_000)
    printed = training.locator(".jp-OutputArea-output").last.inner_text().strip()
    found = re.fullmatch(r"moved at step (\d+) of (\d+)", printed)
    assert found, f"unexpected output: {printed!r}"
    moved, done = int(found.group(1)), int(found.group(2))
    assert 20 < moved < done == STEPS_EDITED
    assert error_outputs(page) == []


TRAIN_AFTER_APPLY = """\
import mlx.core as mx
first = train(model, optimizer, task.loss_fn, task.batch, 30, metrics_every=5, progress=False)
again = train(model, optimizer, task.loss_fn, task.batch, 30, metrics_every=5, progress=False,
              compile=True)
mx.eval(optimizer.state)
print(f"steps done: {first.last_step()} + {again.last_step()} = {optimizer.step.item()}, "
      f"rule: {optimizer.filters[0].text}")"""


def test_apply_before_the_first_step_then_train(page, scratch_notebook):
    # Issue 13: Apply before step 1 left arrays bound to the handler thread's MLX stream,
    # and every later train() of the kernel failed ("There is no Stream(cpu, 1) ...").
    widen(page, 1900)
    open_notebook(page, scratch_notebook("apply_first_in_lab.ipynb", [SETUP, LAB_CELL]))
    run_all(page)
    editor = cell_locator(page, 2).locator(".mol-lab .mol-rule-editor")
    editor.locator(".mol-rule-input textarea").fill(EDITED_RULE)
    expect(editor.locator(".mol-preview")).to_contain_text("adamw -> muon", timeout=KERNEL_MS)
    editor.locator(".mol-apply").click()
    expect(editor.locator(".mol-status")).to_contain_text("Applied", timeout=KERNEL_MS)

    training = run_new_cell(page, TRAIN_AFTER_APPLY, timeout_ms=120_000)
    printed = training.locator(".jp-OutputArea-output").last.inner_text().strip()
    assert printed == f"steps done: 30 + 30 = 60, rule: {EDITED_RULE}"
    assert error_outputs(page) == []


MLX_LM_SETUP = """\
import importlib, time
import mlx.core as mx
import mlx.optimizers as optim
from mlx_lm.tuner.trainer import TrainingArgs, train as mlx_lm_train
from mlx_lm.tuner.utils import linear_to_lora_layers
from multiopt_lab.integrations.mlx_lm import LabCallback
from multiopt_lab import MultiOptimizer
from multiopt_lab import History

llama = importlib.import_module("mlx_lm.models.llama")
mx.random.seed(0)
model = llama.Model(llama.ModelArgs.from_dict({
    "model_type": "llama", "hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64,
    "num_attention_heads": 4, "rms_norm_eps": 1e-5, "vocab_size": 32}))
model.freeze()
linear_to_lora_layers(model, 2, {"rank": 4, "scale": 10.0, "dropout": 0.0})
optimizer = MultiOptimizer([optim.Adam(1e-3), optim.Adam(8e-3)], ['glob("*lora_a")'],
                           labels=["muon", "adamw"])  # the editor tests' field names
data = [([(s + 3 * i) % 32 for i in range(12)], 0) for s in range(16)]
history = History()"""

MLX_LM_TRAIN = """\
args = TrainingArgs(batch_size=8, iters=400, steps_per_report=10,
                    adapter_file="/tmp/mol_lab_adapters.safetensors")
callback = LabCallback(optimizer, model, history, args=args)
moved_at = []

def paced_batches(*args, **kwargs):
    for batch in callback.iterate_batches(*args, **kwargs):
        if not moved_at and optimizer.filters[0].text == 'glob("*lora*")':
            moved_at.append(int(optimizer.step.item()))
        time.sleep(0.02)  # paced, so the run lasts seconds on a fast machine too
        yield batch

mlx_lm_train(model, optimizer, data, args=args, training_callback=callback,
             iterate_batches=paced_batches)"""
MLX_LM_REPORT = 'print("moved at step", moved_at[0] if moved_at else None, "of", history.last_step())'


@pytest.mark.slow
def test_the_lab_follows_mlx_lm_train_and_applies_an_edit_mid_cell(page, scratch_notebook, screenshot):
    widen(page, 1900)
    open_notebook(page, scratch_notebook("mlx_lm_in_lab.ipynb",
                                         [MLX_LM_SETUP, LAB_CELL, MLX_LM_TRAIN, MLX_LM_REPORT]))
    start_run_all(page)
    lab, training = cell_locator(page, 2).locator(".mol-lab"), cell_locator(page, 3)
    figure = lab.locator(".mol-monitor .mol-monitor-figure")
    caption = lab.locator(".mol-monitor-table caption")
    expect(caption).to_contain_text("step", timeout=120_000)
    # The monitor redraws while mlx-lm's train() runs in the cell.
    wait_until_looks_different(figure, figure.screenshot(animations="disabled"))
    assert still_running(training), "the monitor changed only after training ended"

    editor = lab.locator(".mol-rule-editor")
    editor.locator(".mol-rule-input textarea").fill('glob("*lora*")')
    expect(editor.locator(".mol-preview")).to_contain_text("adamw -> muon", timeout=KERNEL_MS)
    editor.locator(".mol-apply").click()
    expect(editor.locator(".mol-status")).to_contain_text("Applied", timeout=KERNEL_MS)
    assert still_running(training), "the edit was applied only after training ended"

    wait_for_run_all(page, timeout_ms=180_000)
    printed = cell_locator(page, 4).locator(".jp-OutputArea-output").inner_text().strip()
    found = re.fullmatch(r"moved at step (\d+) of (\d+)", printed)
    assert found, f"unexpected output: {printed!r}"
    assert 0 < int(found.group(1)) < int(found.group(2)) == 400
    assert error_outputs(page) == []
    screenshot(lab, "lab-mlx-lm")
