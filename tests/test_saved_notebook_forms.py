"""Saved notebooks keep each widget output's static forms, so they read without a kernel.

``multiopt_lab.widgets.saved_notebooks`` drops, on save, the widget views no
saved state can draw (JupyterLab would show "model not found"). Checked here
on notebook dictionaries, through jupyter_server's own contents manager with
the server extension loaded, and on a notebook run in a real kernel, saved,
and exported with nbconvert's HTML: the tree's rows and the figures are in
the page itself, no widget view is left to need JavaScript. The browser test
``tests/browser/test_saved_notebooks.py`` reopens such a file in JupyterLab
and Notebook 7.
"""

from __future__ import annotations

import html
import re
import types

import nbformat
import pytest

from multiopt_lab.widgets.saved_notebooks import (
    WIDGET_STATE, WIDGET_VIEW, _load_jupyter_server_extension, keep_readable_forms, pre_save_hook,
)


def widget_output(model_id: str, **forms) -> dict:
    data = {WIDGET_VIEW: {"model_id": model_id, "version_major": 2, "version_minor": 0}, **forms}
    return nbformat.v4.new_output("display_data", data=data)


def notebook_with(*outputs, state: dict | None = None):
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("tree", execution_count=1)
    cell.outputs = list(outputs)
    notebook.cells = [cell]
    if state is not None:
        notebook.metadata["widgets"] = {WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}
    return notebook


def test_views_no_saved_state_can_draw_are_dropped_and_the_forms_stay():
    tree = widget_output("a", **{"text/plain": "tree", "text/html": "<div>tree</div>"})
    figure = widget_output("b", **{"text/plain": "<LabFigure>", "image/png": "iVBORw0KGgo="})
    notebook = notebook_with(tree, figure)
    assert keep_readable_forms(notebook) == 2
    assert [sorted(output.data) for output in notebook.cells[0].outputs] == [
        ["text/html", "text/plain"], ["image/png", "text/plain"]]
    assert keep_readable_forms(notebook) == 0  # nothing left to drop
    nbformat.validate(notebook)


def test_a_view_the_saved_state_draws_and_a_view_with_nothing_else_are_kept():
    drawn = widget_output("saved", **{"text/plain": "slider"})
    bare = nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "c"}})
    notebook = notebook_with(drawn, bare, state={"saved": {"model_name": "IntSliderModel", "state": {}}})
    assert keep_readable_forms(notebook) == 0
    assert all(WIDGET_VIEW in output.data for output in notebook.cells[0].outputs)


def test_other_outputs_and_cells_pass_unchanged():
    notebook = notebook_with(nbformat.v4.new_output("stream", text="hello\n"))
    notebook.cells.append(nbformat.v4.new_markdown_cell("# Title"))
    before = nbformat.writes(notebook)
    assert keep_readable_forms(notebook) == 0 and nbformat.writes(notebook) == before
    pre_save_hook(model={"type": "file", "format": "text", "content": "not a notebook"}, path="x.txt")


def test_the_server_extension_strips_on_every_save(tmp_path):
    from jupyter_server.services.contents.filemanager import FileContentsManager

    contents = FileContentsManager(root_dir=str(tmp_path))
    log = types.SimpleNamespace(info=lambda *args: None)
    _load_jupyter_server_extension(types.SimpleNamespace(contents_manager=contents, log=log))
    notebook = notebook_with(widget_output("a", **{"text/plain": "tree", "text/html": "<div>tree</div>"}))
    contents.save({"type": "notebook", "format": "json", "content": nbformat.from_dict(notebook)}, "saved.ipynb")
    saved = nbformat.read(tmp_path / "saved.ipynb", as_version=4)
    assert sorted(saved.cells[0].outputs[0].data) == ["text/html", "text/plain"]


RUN = [
    """\
import mlx.optimizers as optim
from multiopt_lab import examples, History, MultiOptimizer, train
from multiopt_lab.widgets import LabWidget, ParameterTreeWidget
from multiopt_lab import TrainingMonitorWidget
from multiopt_lab.plots import plot_training

task = examples.sequence_task("reverse", length=4, batch_size=16)
model = examples.TinyGPT(task.vocab_size, dims=32, layers=2, heads=2, max_length=8)
optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(3e-3)],
                           ['ndim == 2 and not glob("*embed*")'], labels=["muon", "adamw"])
history = History()""",
    "ParameterTreeWidget(model, optimizer)",
    "display(TrainingMonitorWidget(history))\n"
    "train(model, optimizer, task.loss_fn, task.batch, 20, history=history, metrics_every=5)",
    "plot_training(history)",
    "LabWidget(model, optimizer, history)",
]


@pytest.mark.slow
def test_a_run_notebook_saved_this_way_reads_in_nbconvert_html(tmp_path):
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(code) for code in RUN]
    # As JupyterLab saves by default: outputs, no widget state.
    NotebookClient(notebook, timeout=300, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    views = sum(WIDGET_VIEW in output.get("data", {}) for cell in notebook.cells for output in cell.outputs)
    assert views >= 5, "the run should display the tree, the monitor, the progress, the figure and the lab"
    pre_save_hook(model={"type": "notebook", "content": notebook}, path="run.ipynb")

    page, _ = HTMLExporter().from_notebook_node(notebook)
    assert WIDGET_VIEW not in page, "a widget view is left for JavaScript to draw"
    text = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<style.*?</style>", "", page, flags=re.DOTALL)))
    assert re.search(r"weight\s+\[8, 32\]\s+float32\s+256\s+muon\s+ndim == 2", text), "no tree rows in the page"
    # The monitor's last figure, the plotted figure and the lab's figure, inline.
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) >= 3
    assert "model not found" not in page
