"""A notebook a user runs and saves reopens readable without its kernel.

Run All, save, shut the kernel down, reload the page, reopen: every tree,
monitor, figure and lab output must show its static form (the tree's rows,
the figures' PNGs), never "Error displaying widget: model not found" (which
JupyterLab also logs as a console error, failing the page guard). The server
runs the extension ``python3 dev.py lab`` runs
(``multiopt_lab.widgets.saved_notebooks``): the page keeps its live widgets,
the file on disk gets the forms that read without a kernel. The same file is
then opened in Jupyter Notebook 7.
"""

import importlib.util
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from conftest import REQUIRE_BROWSER
from lab_page import cell_locator, open_lab, open_notebook, run_all, shut_down_kernels
from lab_process import LabServer
from page_guard import PageGuard
from test_training_in_lab import SETUP
from test_widgets_in_lab import widen

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CELLS = [
    SETUP,
    "from multiopt_lab import ParameterTreeWidget\nParameterTreeWidget(model, optimizer)",
    "from multiopt_lab import TrainingMonitorWidget\n"
    "display(TrainingMonitorWidget(history))\n"
    "train(model, optimizer, task.loss_fn, task.batch, 40, history=history, metrics_every=5)",
    "from multiopt_lab.plots import plot_training\nplot_training(history)",
    "from multiopt_lab import LabWidget\nLabWidget(model, optimizer, history)",
]
TREE, MONITOR, FIGURE, LAB = 2, 3, 4, 5
# A parameter row of the tree, open at its first levels (the position embedding): name, shape,
# dtype, size, group, rule.
PARAMETER_ROW = re.compile(r"weight\s+\[8, 32\]\s+float32\s+256\s+adamw\s+\(fallback\)")

SAVE = """async () => {
  const app = window.jupyterapp;
  await app.commands.execute('docmanager:save');
  return app.shell.currentWidget.context.model.dirty;
}"""
# Every picture in an element has loaded and has pixels.
PICTURES = "nodes => nodes.map(img => img.complete && img.naturalWidth > 0)"
SAVED: dict[str, Path] = {}
# Notebook 7.6.5 throws this on every page here, an empty notebook and its file
# browser included (its keyboard-shortcut settings meet a plugin without a schema).
NOTEBOOK7_OWN_ERROR = re.compile(r"TypeError: Cannot read properties of undefined \(reading 'schema'\)\n"
                                 r"TypeError: [^\n]*\n\s+at \S+/static/notebook/notebook_core\.")


def run_and_save(page, scratch_notebook, lab_notebook_dir) -> str:
    """Run the scratch notebook in the lab, save it; check the page kept its live widgets."""
    name = scratch_notebook("saved_by_a_user.ipynb", CELLS)
    open_notebook(page, name)
    run_all(page)
    assert page.evaluate(SAVE) is False, "the notebook is still unsaved"
    # The page being edited keeps its live widgets; only the file gets the static forms.
    expect(cell_locator(page, TREE).locator(".mol-tree-widget .mol-search")).to_have_count(1)
    saved = nbformat.read(lab_notebook_dir / name, as_version=4)
    views = [(i, sorted(output.data)) for i, cell in enumerate(saved.cells) for output in cell.get("outputs", [])
             if WIDGET_VIEW in output.get("data", {})]
    assert views == [], f"the saved file keeps widget views that need the kernel: {views}"
    SAVED["file"] = lab_notebook_dir / name
    return name


def cell_in(page, index: int):
    """The cell at ``index`` of the page's one notebook (JupyterLab or Notebook 7)."""
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def readable_outputs(page, where: str) -> None:
    """The reopened notebook shows each widget's static form: no error, the tree's rows, the figures."""
    def output(index):
        return cell_in(page, index).locator(".jp-OutputArea-output")

    def shows_rows(index, message):
        # What a reader sees there once scrolled to it: both front ends lay out only the
        # cells near the view (CSS content-visibility), and innerText is empty for the others.
        output(index).first.scroll_into_view_if_needed()
        expect(output(index).first, message).to_contain_text(PARAMETER_ROW, use_inner_text=True)

    expect(output(LAB).first).to_contain_text("Rules (first match wins", timeout=30_000)
    page.wait_for_timeout(3000)  # the time the widget manager takes to give up on a missing model
    text = page.locator(".jp-Notebook").first.text_content()  # every cell, in view or not
    assert "model not found" not in text and "Error displaying widget" not in text, where
    shows_rows(TREE, f"{where}: no tree rows")
    for index in (MONITOR, FIGURE, LAB):
        pictures = output(index).locator("img").evaluate_all(PICTURES)
        assert pictures and all(pictures), f"{where}: cell {index} shows no figure ({pictures})"
    shows_rows(LAB, f"{where}: the lab shows no tree rows")


def test_a_saved_notebook_reopens_readable_without_its_kernel(page, lab_server, scratch_notebook,
                                                             lab_notebook_dir, screenshot):
    widen(page, 1600)
    name = run_and_save(page, scratch_notebook, lab_notebook_dir)
    shut_down_kernels(page)

    open_lab(page, lab_server.url)  # a fresh page: no widget model survives
    widen(page, 1600)
    open_notebook(page, name)  # a new kernel, which knows none of the saved widgets
    readable_outputs(page, "JupyterLab")
    for index, what in ((TREE, "tree"), (MONITOR, "monitor"), (FIGURE, "figure"), (LAB, "lab")):
        screenshot(cell_locator(page, index), f"saved-notebook-{what}")


def notebook7_unavailable() -> str | None:
    if importlib.util.find_spec("notebook") is None:
        return "Jupyter Notebook 7 (the notebook package) is not installed: pip install '.[test]'"
    return None


def test_a_saved_notebook_reads_in_notebook_7(browser, page, scratch_notebook, lab_notebook_dir,
                                              tmp_path, screenshot):
    reason = notebook7_unavailable()
    if reason:
        if REQUIRE_BROWSER:
            pytest.fail(reason)
        pytest.skip(reason)
    if "file" not in SAVED:
        widen(page, 1600)
        run_and_save(page, scratch_notebook, lab_notebook_dir)
    shut_down_kernels(page)
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(SAVED["file"], root / "saved.ipynb")
    server = LabServer(root, tmp_path / "jupyter", app="notebook")
    guard = PageGuard(allowed_host="127.0.0.1")
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        server.start()
        guard.attach(context)
        notebook = context.new_page()
        guard.watch(notebook)
        notebook.goto(f"{server.url}/notebooks/saved.ipynb", timeout=60_000)
        notebook.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        readable_outputs(notebook, "Notebook 7")
        screenshot(cell_in(notebook, TREE), "saved-notebook-in-notebook7-tree")
        screenshot(cell_in(notebook, MONITOR), "saved-notebook-in-notebook7-monitor")
        guard.page_errors = [error for error in guard.page_errors if not NOTEBOOK7_OWN_ERROR.match(error)]
        guard.assert_clean()
    finally:
        context.close()
        server.stop()
        if os.environ.get("MULTIOPT_LAB_KEEP_NOTEBOOK7_LOG"):
            print(server.log_text())

