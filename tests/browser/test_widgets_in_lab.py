# Tests the private module multiopt_lab._src.palette's own unit.
"""The parameter tree and the rule editor, used as a person would in JupyterLab.

Each test writes a scratch notebook with a small TinyGPT, runs it, then
clicks and types in the widgets and checks what the DOM shows (``data-path``,
``data-group`` and the colour a swatch is painted) and what the kernel did.
The screenshots saved here are the README's pictures (``docs/images/``).
"""

import re

import pytest

from lab_page import cell_locator, error_outputs, open_notebook, run_all, run_new_cell
from multiopt_lab._src.palette import group_colour

pytestmark = pytest.mark.browser
# Without Playwright the harness skips (or, in CI, fails) every browser test; do not crash collection.
expect = pytest.importorskip("playwright.sync_api").expect

# A round trip through the kernel takes a few seconds on a busy 2-core machine.
KERNEL_MS = 20_000

SETUP = """\
import mlx.optimizers as optim
from multiopt_lab import examples
from multiopt_lab import MultiOptimizer

model = examples.TinyGPT(16, dims=32, layers=3, heads=2, max_length=16)
optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)],
                           ['ndim == 2 and not glob("*embed*")'], labels=["muon", "adamw"])"""

TREE_CELL = """\
from multiopt_lab import ParameterTreeWidget
ParameterTreeWidget(model, optimizer)"""

LAB_CELL = """\
from multiopt_lab import LabWidget
LabWidget(model, optimizer)"""


def rgb(colour: str) -> str:
    """``#RRGGBB`` as the ``rgb(r, g, b)`` a browser's computed style reports."""
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


MUON, ADAMW = rgb(group_colour(0)), rgb(group_colour(1))


def swatch_colour(row) -> str:
    """The colour a parameter row's group swatch is painted with, as the browser computed it."""
    return row.locator(".mol-swatch").evaluate("e => getComputedStyle(e).backgroundColor")


def widen(page, width: int, height: int = 1000) -> None:
    """Fold the file browser away and enlarge the window, so wide widgets fit their screenshots.

    Example:
        >>> widen(page, 1600)   # doctest: +SKIP
    """
    page.evaluate("() => { const shell = window.jupyterapp.shell; if (!shell.leftCollapsed) shell.collapseLeft(); }")
    page.set_viewport_size({"width": width, "height": height})


def expect_group(row, label: str, colour: str) -> None:
    """Wait until ``row`` belongs to group ``label``, then check its swatch is painted ``colour``."""
    expect(row).to_have_attribute("data-group", label, timeout=KERNEL_MS)
    assert swatch_colour(row) == colour


def test_tree_expands_shows_details_searches_and_unfolds(page, scratch_notebook, screenshot):
    widen(page, 1360, 1400)
    open_notebook(page, scratch_notebook("tree_in_lab.ipynb", [SETUP, TREE_CELL]))
    run_all(page)
    assert error_outputs(page) == []
    widget = cell_locator(page, 2).locator(".mol-tree-widget")
    query = widget.locator(".mol-tree-view .mol-root")
    expect(query.locator('[data-path="embed.weight"]')).to_be_visible(timeout=KERNEL_MS)
    screenshot(widget, "tree")

    # Repeated blocks start folded into one row, and modules below depth 2 closed.
    fold = query.locator('details.mol-fold[data-fold="layers"]')
    assert fold.get_attribute("data-fold-count") == "3"
    q_weight = query.locator('[data-path="layers.0.attn.q.weight"]')
    expect(q_weight).to_be_hidden()
    fold.locator("> summary .mol-name").click()
    for module in ("layers.0.attn", "layers.0.attn.q"):
        query.locator(f'details[data-path="{module}"] > summary .mol-name').click()
    expect(q_weight).to_be_visible()

    q_weight.click()
    details = widget.locator(".mol-details .mol-details-table")
    expect(details).to_have_attribute("data-path", "layers.0.attn.q.weight", timeout=KERNEL_MS)
    fields = {name: details.locator(f'tr[data-field="{name}"] td').inner_text()
              for name in ("path", "shape", "group", "matched rule")}
    assert fields == {"path": "layers.0.attn.q.weight", "shape": "[32, 32]", "group": "muon",
                      "matched rule": 'ndim == 2 and not glob("*embed*")'}
    expect(q_weight).to_have_class(re.compile(r"\bmol-selected\b"))
    screenshot(widget, "tree-details")

    widget.locator(".mol-search input").fill("*.bias")
    # 13 biases match; the folded run shows one block of them (defect 7: say so).
    expect(widget.locator(".mol-search-status")).to_have_text(
        "glob *.bias: 13 matches (5 shown; unfold for the rest)", timeout=KERNEL_MS)
    matches = query.locator(".mol-param.mol-match")
    expect(matches.first).to_be_visible()
    # The folded run shows one block: its biases, and the final norm's.
    assert sorted(matches.evaluate_all("rows => rows.map(r => r.dataset.path)")) == [
        "layers.0.mlp.layers.0.bias", "layers.0.mlp.layers.2.bias", "layers.0.norm1.bias",
        "layers.0.norm2.bias", "norm.bias"]
    dimmed = query.locator('.mol-param:not(.mol-match)[data-path="embed.weight"]')
    assert float(dimmed.evaluate("e => getComputedStyle(e).opacity")) < 1
    screenshot(widget, "tree-search")
    widget.locator(".mol-search input").fill("")
    expect(query.locator(".mol-match")).to_have_count(0, timeout=KERNEL_MS)

    fold.locator(".mol-unfold").click()
    expect(query.locator("details.mol-fold")).to_have_count(0, timeout=KERNEL_MS)
    for block in ("layers.1", "layers.2"):
        expect(query.locator(f'details.mol-module[data-path="{block}"]')).to_have_count(1)
    expect(query.locator('[data-path="layers.2.attn.q.weight"]')).to_have_count(1)
    # The module the user opened stays open across the redraw.
    expect(q_weight).to_be_visible()
    assert error_outputs(page) == []


def test_editor_recolours_tree_reports_errors_and_applies(page, scratch_notebook, screenshot):
    widen(page, 1900)
    open_notebook(page, scratch_notebook("editor_in_lab.ipynb", [SETUP, LAB_CELL]))
    run_all(page)
    assert error_outputs(page) == []
    lab = cell_locator(page, 2).locator(".mol-lab")
    editor = lab.locator(".mol-rule-editor")
    tree = lab.locator(".mol-tree-view .mol-root")
    embed, position, norm = (tree.locator(f'.mol-param[data-path="{path}"]')
                             for path in ("embed.weight", "position.weight", "norm.weight"))
    expect(embed).to_be_visible(timeout=KERNEL_MS)
    expect_group(embed, "adamw", ADAMW)
    expect_group(position, "muon", MUON)
    apply_button = editor.locator(".mol-apply")
    expect(apply_button).to_be_disabled()

    field = editor.locator(".mol-rule-input textarea")
    field.fill("")
    field.press_sequentially("ndim == 2", delay=40)
    expect_group(embed, "muon", MUON)
    expect_group(position, "muon", MUON)
    expect_group(norm, "adamw", ADAMW)
    preview = editor.locator(".mol-preview")
    expect(preview).to_contain_text("1 parameter, 512 elements: adamw -> muon")
    expect(apply_button).to_be_enabled()
    screenshot(editor, "editor-preview")

    field.press("End")
    field.press_sequentially(" and glob(embed)", delay=40)
    error = editor.locator(".mol-error .mol-error-text")
    expect(error).to_contain_text("expected a string", timeout=KERNEL_MS)
    message, echoed, caret = error.inner_text().splitlines()
    assert message == 'expected a string, e.g. glob("*.weight")'
    assert echoed.strip() == "ndim == 2 and glob(embed)"
    assert caret.index("^") == echoed.index("embed"), "the caret must point at the bad argument"
    # The last valid rules stay on screen and cannot be applied while an error shows.
    expect(preview).to_contain_text("showing the last valid rules")
    expect_group(embed, "muon", MUON)
    expect(apply_button).to_be_disabled()
    screenshot(editor, "editor-error")

    field.fill("ndim == 2")
    expect(error).to_have_count(0, timeout=KERNEL_MS)
    expect(apply_button).to_be_enabled()
    apply_button.click()
    expect(editor.locator(".mol-status")).to_have_text(
        "Applied: 1 parameter, 512 elements: adamw -> muon.", timeout=KERNEL_MS)
    expect(preview).to_contain_text("nothing to do")
    expect_group(embed, "muon", MUON)
    screenshot(lab, "lab-editor")

    check = run_new_cell(page, 'print(optimizer.filters[0].text, "|", '
                               'optimizer.assign(model.parameters()).labels["embed.weight"])')
    assert check.locator(".jp-OutputArea-output").inner_text().strip() == "ndim == 2 | muon"
    assert error_outputs(page) == []


LOCKED_IN = """\
import mlx.core as mx, mlx.nn as nn, mlx.optimizers as optim
from multiopt_lab import MultiOptimizer

model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
for layer in model.layers:
    layer.freeze(keys=["bias"])
optimizer = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.01)], ["shape[1] == 8"], labels=["sgd", "adam"])
grads = nn.value_and_grad(model, lambda m, x: m(x).sum())(model, mx.ones((3, 4)))[1]
optimizer.update(model, grads)
model.unfreeze()  # from now on the rule fails on the biases"""


def test_editor_opens_on_a_rule_that_fails_and_replaces_it(page, scratch_notebook, screenshot):
    widen(page, 1600)
    open_notebook(page, scratch_notebook("failing_rule_in_lab.ipynb", [LOCKED_IN, LAB_CELL]))
    run_all(page)
    assert error_outputs(page) == []
    lab = cell_locator(page, 2).locator(".mol-lab")
    editor = lab.locator(".mol-rule-editor")
    error = editor.locator(".mol-error .mol-error-text")
    expect(error).to_contain_text("index 1 is out of range", timeout=KERNEL_MS)
    expect(editor.locator(".mol-apply")).to_be_disabled()
    screenshot(editor, "editor-failing-rule")
    field = editor.locator(".mol-rule-input textarea")
    field.fill("ndim == 2 and shape[1] == 8")
    expect(error).to_have_count(0, timeout=KERNEL_MS)
    editor.locator(".mol-apply").click()
    expect(editor.locator(".mol-status")).to_contain_text("Applied", timeout=KERNEL_MS)
    check = run_new_cell(page, "print(optimizer.filters[0].text)")
    assert check.locator(".jp-OutputArea-output").inner_text().strip() == "ndim == 2 and shape[1] == 8"
