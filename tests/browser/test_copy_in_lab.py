# Tests the private modules' own units: multiopt_lab._src.optimizer_file.as_data,
#   multiopt_lab._src.render.export.
"""The rule editor's "Copy as TOML" / "Copy as Python" in JupyterLab: the clipboard gets the text.

Chromium opens the clipboard to a page on 127.0.0.1 (a secure context) in a
click, once the context has the clipboard permissions. The copied rule file
is then loaded as a user would: ``load_rules``, ``load_optimizer`` and
``python -m multiopt_lab check``.
"""

import ast
import subprocess
import sys

import mlx.optimizers as optim
import pytest

from lab_page import cell_locator, error_outputs, open_notebook, run_all
from multiopt_lab import MultiOptimizer, load_optimizer, load_rules
from multiopt_lab._src.optimizer_file.as_data import optimizer_to_data
from multiopt_lab._src.render.export import export_text
from multiopt_lab.examples import TinyGPT

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

KERNEL_MS = 20_000

SETUP = """\
import mlx.optimizers as optim
from multiopt_lab import examples
from multiopt_lab import MultiOptimizer
from multiopt_lab import RuleEditorWidget

model = examples.TinyGPT(16, dims=32, layers=2, heads=2, max_length=16)
schedule = optim.join_schedules([optim.linear_schedule(0.0, 1e-3, 10), optim.cosine_decay(1e-3, 90)], [10])
optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(schedule, weight_decay=0.1)],
                           ['ndim == 2 and not glob("*embed*")'], labels=["muon", "adamw"])
RuleEditorWidget(model, optimizer, tree=None)"""


def same_optimizer():
    """The optimizer the notebook builds, made here to compare with what the clipboard holds."""
    schedule = optim.join_schedules([optim.linear_schedule(0.0, 1e-3, 10), optim.cosine_decay(1e-3, 90)], [10])
    return MultiOptimizer([optim.Muon(0.02), optim.AdamW(schedule, weight_decay=0.1)],
                          ['ndim == 2 and not glob("*embed*")'], labels=["muon", "adamw"])


def test_copy_puts_the_rule_file_and_the_python_on_the_clipboard(page, lab_server, scratch_notebook,
                                                                screenshot, tmp_path):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab_server.url)
    open_notebook(page, scratch_notebook("copy_in_lab.ipynb", [SETUP]))
    run_all(page)
    assert error_outputs(page) == []
    editor = cell_locator(page, 1).locator(".mol-rule-editor")
    status = editor.locator(".mol-status")

    editor.locator(".mol-copy-toml button").click()
    expect(status).to_have_text("Copied the rule file (TOML) to the clipboard; it is also shown below.",
                                timeout=KERNEL_MS)
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == export_text(same_optimizer(), "toml").text
    expect(editor.locator(".mol-export textarea")).to_have_value(copied)
    screenshot(editor, "editor-copied-toml")

    path = tmp_path / "copied.toml"
    path.write_text(copied)
    labels, rules = load_rules(path)
    assert labels == ["muon", "adamw"] and rules[0].text == 'ndim == 2 and not glob("*embed*")'
    loaded = load_optimizer(path, TinyGPT(16, dims=32, layers=2, heads=2, max_length=16))
    assert [optimizer_to_data(o) for o in loaded.optimizers] == \
        [optimizer_to_data(o) for o in same_optimizer().optimizers]
    (tmp_path / "gpt_for_check.py").write_text(
        "from multiopt_lab.examples import TinyGPT\n"
        "def make():\n    return TinyGPT(16, dims=32, layers=2, heads=2, max_length=16)\n")
    done = subprocess.run([sys.executable, "-m", "multiopt_lab", "check", "copied.toml", "--model",
                           "gpt_for_check:make"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "check passed" in done.stdout, done.stderr

    editor.locator(".mol-copy-python button").click()
    expect(status).to_have_text("Copied the Python code to the clipboard; it is also shown below.",
                                timeout=KERNEL_MS)
    code = page.evaluate("() => navigator.clipboard.readText()")
    assert code == export_text(same_optimizer(), "python").text
    assert ast.parse(code)
    assert error_outputs(page) == []
