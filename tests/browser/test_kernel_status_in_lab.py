"""The kernel says Busy for as long as a cell trains, while the lab's widgets act mid-cell.

Widget messages that arrive while a cell trains are handled on a kernel
subshell (``multiopt_lab._src.widgets.subshell``), and a subshell reports busy and
idle for each message it handles. Unless those reports are kept out of the
kernel's own state, JupyterLab's status bar and the server's ``/api/kernels``
say Idle a second or two into a training cell: anything that waits for the
kernel (a person, Run All automation, tools) is misled. This test polls both,
and JupyterLab's own record of the kernel's status, during a training cell in
which the editor's Apply lands and the progress bar's Stop ends the run.
"""

import json
import re
import time
import urllib.request

import pytest

from lab_page import cell_locator, error_outputs, open_notebook, start_run_all, wait_for_run_all
from test_training_in_lab import EDITED_RULE, LAB_CELL, SETUP, still_running, wait_for_step
from test_widgets_in_lab import KERNEL_MS, widen

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

STEPS = 3000
TRAIN_CELL = f"""\
import time
moved_at = []
def watch(step, loss, history):
    # The first step that ran under the rule typed in the editor.
    if not moved_at and optimizer.filters[0].text == {EDITED_RULE!r}:
        moved_at.append(step)
    time.sleep(0.02)  # paced, so the run lasts until Stop on a fast machine too
history = train(model, optimizer, task.loss_fn, task.batch, {STEPS}, history=history,
                metrics_every=5, callbacks=[watch])"""
REPORT = 'print("moved at step", moved_at[0] if moved_at else None, "of", history.last_step())'

PAGE_STATUS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session.kernel;
  const bar = document.querySelector('#jp-main-statusbar').textContent;
  return {kernel: kernel.status, bar: bar.includes('Busy') ? 'busy' : bar.includes('Idle') ? 'idle' : bar};
}"""


def server_status(base_url: str) -> str:
    """``execution_state`` of the server's only kernel, from ``/api/kernels``."""
    with urllib.request.urlopen(f"{base_url}/api/kernels", timeout=10) as reply:
        kernels = json.load(reply)
    assert len(kernels) == 1, f"expected the notebook's kernel alone, found {kernels}"
    return kernels[0]["execution_state"]


class StatusLog:
    """Samples (server, JupyterLab's kernel, status bar) taken while ``cell`` runs."""

    def __init__(self, page, base_url: str, cell):
        self.page, self.base_url, self.cell = page, base_url, cell
        self.samples: list[tuple[str, str, str]] = []

    def sample_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sample()
            self.page.wait_for_timeout(100)

    def sample(self) -> None:
        # Kept only when the cell runs before and after the sample: at the cell's end
        # the kernel rightly turns idle.
        if not still_running(self.cell):
            return
        server = server_status(self.base_url)
        page = self.page.evaluate(PAGE_STATUS)
        if still_running(self.cell):
            self.samples.append((server, page["kernel"], page["bar"]))

    def not_busy(self) -> list[tuple[str, str, str]]:
        return [sample for sample in self.samples if sample != ("busy", "busy", "busy")]


def test_kernel_stays_busy_while_a_cell_trains_and_the_lab_acts_mid_cell(page, lab_server, scratch_notebook,
                                                                        screenshot):
    widen(page, 1900)
    open_notebook(page, scratch_notebook("status_in_lab.ipynb", [SETUP, LAB_CELL, TRAIN_CELL, REPORT]))
    start_run_all(page)
    lab, training = cell_locator(page, 2).locator(".mol-lab"), cell_locator(page, 3)
    progress = training.locator(".mol-progress")
    wait_for_step(progress, 5)
    log = StatusLog(page, lab_server.url, training)
    log.sample_for(4)  # the monitor's view reports its width and theme: widget messages

    editor = lab.locator(".mol-rule-editor")
    editor.locator(".mol-rule-input textarea").fill(EDITED_RULE)
    expect(editor.locator(".mol-preview")).to_contain_text("adamw -> muon", timeout=KERNEL_MS)
    log.sample()
    editor.locator(".mol-apply").click()
    expect(editor.locator(".mol-status")).to_contain_text("Applied", timeout=KERNEL_MS)
    assert still_running(training), "the edit was applied only after training ended"
    log.sample_for(3)
    screenshot(page.locator("#jp-main-statusbar"), "status-bar-busy-mid-cell")

    stop = progress.locator(".mol-stop")
    stop.click()
    expect(stop).to_have_text(re.compile("Stopping…|Stopped"), timeout=KERNEL_MS)
    wait_for_run_all(page, timeout_ms=120_000)

    assert len(log.samples) >= 10, f"too few samples taken while the cell ran: {log.samples}"
    assert log.not_busy() == [], (
        f"(server, JupyterLab, status bar) said other than busy while the cell ran, "
        f"{len(log.not_busy())} of {len(log.samples)} samples: {log.not_busy()[:5]}")
    printed = cell_locator(page, 4).locator(".jp-OutputArea-output").inner_text().strip()
    found = re.fullmatch(r"moved at step (\d+) of (\d+)", printed)
    assert found, f"unexpected output: {printed!r}"
    moved, done = int(found.group(1)), int(found.group(2))
    assert 5 < moved < done < STEPS, "Apply landed mid-cell and Stop ended the run early"
    # Once the cell ended, every view of the kernel says idle.
    assert server_status(lab_server.url) == "idle"
    assert page.evaluate(PAGE_STATUS) == {"kernel": "idle", "bar": "idle"}
    assert error_outputs(page) == []
