"""Saved tutorials read before anything runs: untrusted (stylesheets stripped) and trusted.

A newcomer opens a tutorial and reads it before running a cell. JupyterLab
shows an untrusted notebook's HTML through its sanitizer, which drops
``<style>`` (as a code host's notebook view and nbviewer do): the tree must
still read as rows of separate cells. A trusted notebook must show each
widget's static form, not "Error displaying widget: model not found" (and
log no error).
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from lab_page import cell_locator, open_notebook

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

TUTORIAL = "04_repartition_while_training.ipynb"
# A parameter row of the tree, every cell apart: name, shape, dtype, size, group, rule, and the
# finding the tutorial fixes later (Muon on the embeddings).
PARAMETER_ROW = re.compile(r"^\W*weight\s+\[17, 32\]\s+float32\s+544\s+muon\s+ndim == 2\s+! Muon on an embedding$",
                           re.MULTILINE)
MODULE_ROW = re.compile(r"^\W*model\s+28 params\s+[\d,]+\s+muon \d+% \| adamw \d+%", re.MULTILINE)


def output_of(page, cell_index: int):
    return cell_locator(page, cell_index).locator(".jp-OutputArea-output").first


def shown_text(output) -> str:
    """The text a reader sees in ``output`` once scrolled to it: JupyterLab lays out only the
    cells near the view (CSS content-visibility), and innerText is empty for the others."""
    output.scroll_into_view_if_needed()
    expect(output).not_to_have_text("", use_inner_text=True)
    return output.inner_text()


def settle(page) -> None:
    """Give the widget manager the time to try (and fail) to render saved widget views."""
    page.wait_for_timeout(3000)


def test_an_untrusted_tutorial_shows_a_readable_tree_without_running(page, page_guard):
    open_notebook(page, TUTORIAL)
    settle(page)
    assignment = output_of(page, 2)
    expect(assignment).to_contain_text("weight")
    assert assignment.locator("style").count() == 0, "expected the sanitizer to strip the stylesheet"
    text = shown_text(assignment)
    assert PARAMETER_ROW.search(text), f"tree rows run together without their stylesheet:\n{text[:2000]}"
    assert MODULE_ROW.search(text), text[:2000]

    lab = shown_text(output_of(page, 20))
    assert "LabWidget(" not in lab and "model not found" not in lab
    assert 'ndim == 2 and module != "Embedding"' in lab
    assert "would move: 4 parameters" in lab
    # The lab's tree shows the draft: the embedding back with AdamW.
    assert re.search(r"^\W*weight\s+\[17, 32\]\s+float32\s+544\s+adamw\s+\(fallback\)", lab, re.MULTILINE), lab[:3000]
    page_guard.assert_clean()


def test_a_trusted_tutorial_shows_static_widget_forms_and_logs_no_error(page, page_guard, lab_server,
                                                                       lab_notebook_dir):
    name = "trusted_03.ipynb"
    shutil.copy(lab_notebook_dir / "03_watching_groups.ipynb", lab_notebook_dir / name)
    env = {**os.environ, "JUPYTER_DATA_DIR": str(lab_server.work_dir / "data")}
    subprocess.run([sys.executable, "-m", "jupyter", "trust", str(lab_notebook_dir / name)], env=env,
                   check=True, capture_output=True)
    open_notebook(page, name)
    settle(page)
    monitor = output_of(page, 3)
    expect(monitor.locator("img")).to_have_count(1)  # the monitor's last figure, as a PNG
    panel_text = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").inner_text()
    assert "model not found" not in panel_text and "Error displaying widget" not in panel_text
    page_guard.assert_clean()


WHICH_PARAMETER = "08_which_parameter.ipynb"
# A folded row of the tree's value column, unstyled: its cells apart, the range over the four
# blocks marked far (block 2 is 100x off).
VALUE_ROW = re.compile(r"^\W*weight\s+\[32, 32\]\s+float32\s+1,024\s+muon\s+within\(\"Block\"\).*?"
                       r"\s+[\d.e-]+\u2013[\d.e-]+ !$", re.MULTILINE)


def test_tutorial_08_reads_unrun_with_its_value_column_and_figures(page, page_guard, screenshot):
    open_notebook(page, WHICH_PARAMETER)
    settle(page)
    tree = output_of(page, 11)
    expect(tree).to_contain_text("weight")
    # Rows with a value show it in their own cell; the folded blocks open without a kernel.
    assert re.search(r"^\W*weight\s+\[10, 32\]\s+float32\s+320\s+adamw\s+\(fallback\)\s+[\d.e-]+$",
                     tree.inner_text(), re.MULTILINE), tree.inner_text()[:3000]
    for name in ("[0..3]", "attn", "q"):
        tree.locator("summary").filter(has_text=re.compile(rf"^\W*{re.escape(name)}\s")).first.click()
    text = tree.inner_text()
    assert VALUE_ROW.search(text), f"the tree's value column does not read unstyled:\n{text[:3000]}"
    screenshot(tree, "tutorial-08-untrusted-tree")
    for index in (7, 13):  # the heatmap, one parameter's curves
        image = output_of(page, index).locator("img")
        expect(image).to_have_count(1)
        assert image.evaluate("img => img.naturalWidth") > 400
    panel_text = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").inner_text()
    assert "model not found" not in panel_text and "Error displaying widget" not in panel_text
    page_guard.assert_clean()
