"""The lab on real screens: side by side at notebook widths, nothing wrapped mid-word, the dark theme.

One notebook with a trained TinyGPT and a LabWidget is shown at 1050 and
1400 px and in JupyterLab's dark theme. The screenshots are the README's
pictures (``docs/images/lab_1050.png``, ``lab_1400.png``, ``lab_dark.png``).
"""

import pytest

from lab_page import cell_locator, error_outputs, open_notebook, run_all
from test_widgets_in_lab import KERNEL_MS, widen

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

SETUP = """\
import mlx.core as mx
import mlx.optimizers as optim
import multiopt_lab as mol
from multiopt_lab import examples

mx.random.seed(0)
task = examples.sequence_task("reverse", length=4, batch_size=16)
model = examples.TinyGPT(task.vocab_size, dims=32, layers=2, heads=2, max_length=8)
optimizer = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(3e-3)],
                               ['ndim == 2 and not glob("embed.*") and not glob("position.*")'],
                               labels=["muon", "adamw"])
history = mol.History()
mol.train(model, optimizer, task.loss_fn, task.batch, 60, history=history, metrics_every=5, progress=False);"""

LAB_CELL = """\
lab = mol.LabWidget(model, optimizer, history)
lab"""


def boxes(page, lab):
    """The bounding boxes of the lab's editor, tree and monitor."""
    return {name: lab.locator(css).first.bounding_box()
            for name, css in (("editor", ".mol-rule-editor"), ("tree", ".mol-tree-widget"),
                              ("monitor", ".mol-monitor"))}


def no_row_wraps(lab) -> list[str]:
    """Tree rows taller than one line of text: a row that wrapped."""
    return lab.locator(".mol-tree-view .mol-row").evaluate_all("""rows => rows
        .filter(r => r.offsetParent !== null)
        .filter(r => r.getBoundingClientRect().height > 1.8 * parseFloat(getComputedStyle(r).fontSize))
        .map(r => r.innerText.replace(/\\s+/g, ' ').trim())""")


def open_lab_notebook(page, scratch_notebook, name):
    open_notebook(page, scratch_notebook(name, [SETUP, LAB_CELL]))
    run_all(page)
    assert error_outputs(page) == []
    lab = cell_locator(page, 2).locator(".mol-lab")
    expect(lab.locator('.mol-tree-view .mol-param[data-path="embed.weight"]')).to_be_visible(timeout=KERNEL_MS)
    return lab


def wait_for_figure_width(lab, width_px: int) -> None:
    """Wait until the monitor's picture was redrawn about as wide as its column."""
    image = lab.locator(".mol-monitor .mol-figure-view img")
    lab.page.wait_for_function(
        "([img, width]) => img.naturalWidth > 0 && Math.abs(img.naturalWidth - width) <= 24",
        arg=[image.element_handle(), width_px], timeout=KERNEL_MS)


@pytest.mark.parametrize("width", [1050, 1400])
def test_editor_and_tree_side_by_side_at_notebook_widths(width, page, scratch_notebook, screenshot):
    widen(page, width, 1700)  # tall enough for the whole lab in one screenshot
    lab = open_lab_notebook(page, scratch_notebook, f"lab_{width}.ipynb")
    found = boxes(page, lab)
    editor, tree, monitor = found["editor"], found["tree"], found["monitor"]
    assert editor["x"] + editor["width"] <= tree["x"], f"the tree is not beside the editor: {found}"
    assert abs(editor["y"] - tree["y"]) < 5
    assert monitor["y"] >= max(editor["y"] + editor["height"], tree["y"] + tree["height"]) - 1
    assert no_row_wraps(lab) == []
    # The rule field takes the editor's width: a real rule fits without scrolling.
    field = lab.locator(".mol-rule-input textarea").first
    assert field.evaluate("e => e.scrollWidth <= e.clientWidth"), "the rule does not fit its field"
    # The monitor's figure is drawn at the width it is shown, so its text is not shrunk.
    figure_box = lab.locator(".mol-monitor .mol-figure-view").bounding_box()
    wait_for_figure_width(lab, int(figure_box["width"]))
    table = lab.locator(".mol-monitor-table")
    expect(table.locator("th", has_text="learning_rate")).to_be_visible()
    screenshot(lab, f"lab-{width}")
    assert error_outputs(page) == []


def test_narrow_lab_stacks_editor_tree_monitor(page, scratch_notebook):
    widen(page, 760, 1100)
    lab = open_lab_notebook(page, scratch_notebook, "lab_narrow.ipynb")
    found = boxes(page, lab)
    assert found["editor"]["y"] + found["editor"]["height"] <= found["tree"]["y"] + 1
    assert found["tree"]["y"] + found["tree"]["height"] <= found["monitor"]["y"] + 1
    assert no_row_wraps(lab) == []


def test_search_status_stays_whole_and_errors_are_red(page, scratch_notebook):
    widen(page, 1050, 1100)
    lab = open_lab_notebook(page, scratch_notebook, "lab_search.ipynb")
    search = lab.locator(".mol-search input")
    box_before = search.bounding_box()["width"]
    search.fill("*.bias")
    status = lab.locator(".mol-search-status pre")
    expect(status).to_contain_text("unfold for the rest", timeout=KERNEL_MS)
    line = status.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || 1.4 * parseFloat(getComputedStyle(e).fontSize)")
    assert status.bounding_box()["height"] < 1.6 * line, "the status wrapped"
    assert abs(search.bounding_box()["width"] - box_before) < 1, "the search box shrank"
    search.fill("ndim ==")
    expect(status).to_have_class("mol-error", timeout=KERNEL_MS)
    red, green, blue = status.evaluate("e => getComputedStyle(e).color.match(/\\d+/g).map(Number)")
    assert red > 150 and green < 100 and blue < 100


def test_dark_theme_reaches_the_figure_and_the_tree(page, scratch_notebook, screenshot):
    widen(page, 1400, 1700)
    lab = open_lab_notebook(page, scratch_notebook, "lab_dark.ipynb")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=KERNEL_MS)
    image = lab.locator(".mol-monitor .mol-figure-view img")
    # The kernel redraws the figure in the dark theme's colours: its corner pixel turns dark.
    page.wait_for_function("""img => {
        if (!img.complete || !img.naturalWidth) return false;
        const c = document.createElement('canvas'); c.width = 4; c.height = 4;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        const [r, gr, b] = g.getImageData(1, 1, 1, 1).data;
        return r + gr + b < 120;
    }""", arg=image.element_handle(), timeout=KERNEL_MS)
    name = lab.locator('.mol-tree-view .mol-param[data-path="embed.weight"] .mol-name')
    red, green, blue = name.evaluate("e => getComputedStyle(e).color.match(/\\d+/g).slice(0, 3).map(Number)")
    assert red + green + blue > 450, "tree text must be light on the dark background"
    screenshot(lab, "lab-dark")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    assert error_outputs(page) == []
