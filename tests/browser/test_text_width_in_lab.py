"""Saved text outputs in JupyterLab at 1000 and 1600 px, light and dark: no line wraps mid-word.

Issue 27: JupyterLab shows text output with ``word-break: break-all``, so the
175-column text tree and long diagnostics and errors wrapped inside names
(``! 8 flagged bel`` / ``ow``). The text forms now fit 100 columns by default,
which a 1000 px window shows whole with the file browser folded away. A
notebook saved with such outputs is opened (not run) and every output line
must take exactly one line on screen.
"""

from __future__ import annotations

import mlx.optimizers as optim
import nbformat
import pytest

import multiopt_lab as mol
from lab_page import open_notebook
from test_widgets_in_lab import widen

pytestmark = pytest.mark.browser

# For each <pre> of an output: its lines of text, and the lines it takes on screen.
LINES_ON_SCREEN = """pres => pres.map(pre => {
  const range = document.createRange();
  range.selectNodeContents(pre);
  const tops = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top)));
  // Blank lines draw no box: count the lines that hold text.
  return {text: pre.textContent.split('\\n').filter(line => line.length > 0).length, screen: tops.size,
          first: pre.textContent.slice(0, 60)};
})"""


def saved_outputs() -> list[str]:
    """Texts a user prints: a real mlx-lm model's tree and legend, its diagnostics, a near-miss
    legend, a CoverageError and a RuleError."""
    pytest.importorskip("mlx_lm")
    from mlx_lm_models import build
    from multiopt_lab.examples import TinyMoE

    model = build("llama+lora")
    lora = mol.MultiOptimizer([optim.Adam(1e-3), optim.Adam(8e-3)], ['glob("*lora_a") or glob("*mlp*lora_b")'],
                              labels=["lora_a", "lora_b"])
    deepseek = build("deepseek_v3")
    muon = mol.recipes.muon(deepseek)
    moe = mol.assign(TinyMoE(16, dims=8, layers=2, heads=2, experts=2, top_k=1),
                     ['ndim == 2 and module != "Embedding"'], ["muon", "adamw"])
    texts = [mol.render_text(lora.assign(model), lora), mol.render_text(muon.assign(deepseek), muon),
             str(muon.assign(deepseek).diagnostics), mol.render_text(moe)]
    try:
        muon.assign(deepseek).check(allow_fallback=False)
    except mol.CoverageError as error:
        texts.append(f"CoverageError: {error}")
    try:
        mol.rule("ndim == 2 and " + " and ".join(f'glob("*layer_{i}*")' for i in range(12)) + " and ndims == 3")
    except mol.RuleError as error:
        texts.append(f"RuleError: {error}")
    return texts


@pytest.fixture(scope="module")
def notebook_name(lab_notebook_dir):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}
    for i, text in enumerate(saved_outputs()):
        cell = nbformat.v4.new_code_cell(f"print(text_{i})", execution_count=i + 1)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text + "\n")]
        notebook.cells.append(cell)
    nbformat.write(notebook, lab_notebook_dir / "saved_text_outputs.ipynb")
    return "saved_text_outputs.ipynb"


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
@pytest.mark.parametrize("width", [1000, 1600])
def test_saved_text_outputs_do_not_wrap(page, notebook_name, screenshot, width, theme):
    widen(page, width, 1000)
    page.evaluate("theme => window.jupyterapp.commands.execute('apputils:change-theme', {theme})", theme)
    page.wait_for_function("theme => document.body.dataset.jpThemeName === theme", arg=theme)
    panel = open_notebook(page, notebook_name)
    pres = panel.locator(".jp-OutputArea-output pre")
    assert pres.count() == 6
    found = pres.evaluate_all(LINES_ON_SCREEN)
    wrapped = [f for f in found if f["screen"] != f["text"]]
    assert not wrapped, f"outputs whose lines wrap on screen at {width} px: {wrapped}"
    if width == 1000:
        name = "text-1000-" + ("dark" if "Dark" in theme else "light")
        screenshot(panel.locator(".jp-Cell").nth(0), name + "-tree")
        screenshot(panel.locator(".jp-Cell").nth(4), name + "-error")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
