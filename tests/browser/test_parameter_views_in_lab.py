"""Per-parameter views in JupyterLab (issue 25): the lab after a run with ``per_parameter=True``.

A scratch notebook trains a TinyGPT whose block 1 starts with matrices 100x
too large, inside a LabWidget. The tree's value column shows each
parameter's latest update ratio (the folded blocks their range, marked ``!``
where one block is far from its group's median); a click on a parameter
shows its curves beside its group's in the details; the monitor lists the
parameters farthest from their group's median; a heatmap cell draws the
figure. Screenshots of each land in ``test-artifacts/screenshots``.
"""

import re

import pytest

from lab_page import cell_locator, error_outputs, open_notebook, run_all

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

KERNEL_MS = 30_000

SETUP = """\
import mlx.core as mx
from mlx.utils import tree_map
import multiopt_lab as mol
from multiopt_lab import examples, plots

task = examples.sequence_task("reverse", length=4, batch_size=16)
mx.random.seed(0)
model = examples.TinyGPT(task.vocab_size, dims=16, layers=3, heads=2)
block = model.layers[1]
block.update(tree_map(lambda w: w * 100 if w.ndim == 2 else w, block.parameters()))
optimizer = mol.recipes.muon(model)
history = mol.History()"""

LAB = """\
lab = mol.LabWidget(model, optimizer, history)
display(lab)
mol.train(model, optimizer, task.loss_fn, task.batch, steps=30, history=history, run="odd",
          metrics_every=3, per_parameter=True, progress=False)"""

HEATMAP = """plots.plot_parameter_heatmap(history, group_blocks=True)"""


def widen(page, width: int, height: int = 1400) -> None:
    page.evaluate("() => { const shell = window.jupyterapp.shell; if (!shell.leftCollapsed) shell.collapseLeft(); }")
    page.set_viewport_size({"width": width, "height": height})


def test_value_column_details_curves_and_monitor_table(page, scratch_notebook, screenshot):
    widen(page, 1600)
    open_notebook(page, scratch_notebook("parameter_views.ipynb", [SETUP, LAB, HEATMAP]))
    run_all(page)
    assert error_outputs(page) == []
    lab = cell_locator(page, 2).locator(".mol-lab")
    tree = lab.locator(".mol-tree-widget")
    root = tree.locator(".mol-tree-view .mol-root")

    # The column: the folded blocks [0..2] show the range of the three, marked far.
    expect(root.locator(".mol-tree.mol-with-values")).to_have_count(1, timeout=KERNEL_MS)
    fold = root.locator('details.mol-fold[data-fold="layers"]')
    fold.locator("> summary .mol-name").click()
    for module in ("layers.0.attn", "layers.0.attn.q"):
        root.locator(f'details[data-path="{module}"] > summary .mol-name').click()
    q_row = root.locator('.mol-param[data-path="layers.0.attn.q.weight"]')
    expect(q_row).to_be_visible()
    cell = q_row.locator(".mol-value")
    assert re.fullmatch(r"[\d.e-]+\u2013[\d.e-]+ !", cell.inner_text().strip()), cell.inner_text()
    assert "mol-value-far" in cell.get_attribute("class")
    assert "farthest: layers.1.attn.q.weight" in cell.get_attribute("title")
    # The column sits in its own grid column, right of the rule, left of the notes.
    rule_box = q_row.locator(".mol-rule").bounding_box()
    value_box = cell.bounding_box()
    assert value_box["x"] >= rule_box["x"] + rule_box["width"] - 1
    embed_value = root.locator('.mol-param[data-path="embed.weight"] .mol-value')
    assert abs(embed_value.bounding_box()["x"] + embed_value.bounding_box()["width"]
               - value_box["x"] - value_box["width"]) < 2, "values are right-aligned in one column"
    screenshot(tree, "parameter-views-tree-column")

    # The toolbar picks the metric.
    tree.locator(".mol-value-metric select").select_option("param_norm")
    expect(cell).to_have_attribute("title", re.compile(r"^param_norm over 3 folded blocks"),
                                   timeout=KERNEL_MS)
    low, high = (float(x) for x in cell.inner_text().strip(" !").split("\u2013"))
    assert high > 50 * low, "block 1's matrices are 100x larger than the others'"
    tree.locator(".mol-value-metric select").select_option("update_ratio")

    # A click shows the curves beside the group's.
    q_row.click()
    details = tree.locator(".mol-details")
    expect(details.locator(".mol-details-table")).to_have_attribute(
        "data-path", "layers.0.attn.q.weight", timeout=KERNEL_MS)
    curves = details.locator('figure.mol-parameter-curves img')
    expect(curves).to_have_count(1)
    size = curves.evaluate("img => [img.naturalWidth, img.naturalHeight, img.complete]")
    assert size[0] > 400 and size[1] > 300 and size[2], size
    screenshot(details, "parameter-views-details")

    # The monitor lists block 1's matrices as farthest from the group median.
    top = lab.locator(".mol-monitor-parameters table.mol-monitor-top")
    expect(top).to_contain_text("farthest from the group median", timeout=KERNEL_MS)
    paths = top.locator("tr[data-path]").evaluate_all("rows => rows.map(r => r.dataset.path)")
    assert len(paths) == 5 and all(p.startswith("layers.1.") for p in paths[:5]), paths
    screenshot(lab.locator(".mol-monitor"), "parameter-views-monitor")

    heatmap = cell_locator(page, 3).locator(".jp-OutputArea-output img").first
    expect(heatmap).to_be_visible()
    screenshot(heatmap, "parameter-views-heatmap")
    assert error_outputs(page) == []
