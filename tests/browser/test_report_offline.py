"""The run report opened as a file in Chromium: no request but the file, JavaScript off.

Issue 27: a run must travel to someone without Python as one HTML file. The
page is opened from disk with JavaScript disabled and every request routed:
the only one is the file itself. Its sections fold with ``<details>``, the
curves and the tree show, and a hostile label reads as text.
"""

from __future__ import annotations

import mlx.optimizers as optim
import pytest

import multiopt_lab as mol
from multiopt_lab import examples

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

HOSTILE = "muon<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    task = examples.sequence_task("reverse", length=4)
    model = examples.TinyGPT(task.vocab_size, dims=16, layers=2, heads=2)
    optimizer = mol.MultiOptimizer([optim.Muon(optim.cosine_decay(0.02, 40, 1e-3)), optim.AdamW(1e-3)],
                                   ['within("Block") and module == "Linear" and ndim == 2'],
                                   labels=[HOSTILE, "adamw"])
    history = mol.train(model, optimizer, task.loss_fn, task.batch, steps=40, metrics_every=4,
                        per_parameter=True, progress=False, run="reverse")
    return mol.report(optimizer, model, history).save(tmp_path_factory.mktemp("report") / "run.html")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_report_reads_offline_without_javascript(browser, report_file, screenshot, scheme):
    context = browser.new_context(java_script_enabled=False, color_scheme=scheme,
                                  viewport={"width": 1200, "height": 900})
    requests, errors = [], []

    def route(handled):
        requests.append(handled.request.url)
        if handled.request.url == report_file.as_uri():
            handled.continue_()
        else:
            handled.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        page.goto(report_file.as_uri())
        page.wait_for_load_state("load")
        assert requests == [report_file.as_uri()], f"requests beyond the file: {requests}"
        assert errors == []
        report = page.locator(".mol-run-report")
        expect(report.locator("h1")).to_have_text("Run report: reverse")
        groups = report.locator("table.mol-groups")
        expect(groups).to_contain_text(HOSTILE)  # as text: no image, no handler
        assert page.locator("img").count() == 0 and page.locator("script").count() == 0
        expect(groups).to_contain_text("cosine_decay")
        figure = report.locator('details[data-section="curves"] svg.mol-figure')
        expect(figure).to_be_visible()
        assert figure.bounding_box()["width"] > 600
        expect(report.locator('.mol-tree [data-path="embed.weight"]').first).to_be_visible()
        # The per-parameter overview as multiopt_lab.plots draws it (inline SVG), then its
        # farthest parameters as text.
        per_parameter = report.locator('details[data-section="per-parameter"]')
        overview = per_parameter.locator("svg.mol-figure")
        expect(overview).to_be_visible()
        assert overview.bounding_box()["width"] > 600
        expect(per_parameter.locator("table.mol-per-parameter caption")).to_contain_text(
            "The 10 parameters of 28 farthest from their group's median update-to-parameter ratio at step 37")
        expect(per_parameter.locator("table.mol-per-parameter tbody tr")).to_have_count(10)
        # Folding needs no script: a click on a section's summary closes it.
        rules = report.locator('details[data-section="rules"]')
        expect(rules.locator("pre")).to_be_visible()
        rules.locator("summary").click()
        expect(rules.locator("pre")).to_be_hidden()
        rules.locator("summary").click()
        if scheme == "dark":  # the page follows the reader's preference
            background = page.evaluate("getComputedStyle(document.querySelector('.mol-run-report')).backgroundColor")
            assert background == "rgb(13, 17, 23)", background
        screenshot(report, f"report-{scheme}")
        screenshot(per_parameter, f"report-per-parameter-{scheme}")
    finally:
        context.close()


def test_the_report_shows_in_a_notebook_in_the_dark_theme(page, scratch_notebook, screenshot):
    from lab_page import cell_locator, error_outputs, open_notebook, run_all

    code = """\
import mlx.optimizers as optim
import multiopt_lab as mol
from multiopt_lab import examples
task = examples.sequence_task("reverse", length=4)
model = examples.TinyGPT(task.vocab_size, dims=16, layers=1, heads=2)
optimizer = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)],
                               ['within("Block") and module == "Linear" and ndim == 2'], labels=["muon", "adamw"])
history = mol.train(model, optimizer, task.loss_fn, task.batch, steps=20, metrics_every=4,
                    per_parameter=True, progress=False)
mol.report(optimizer, model, history)"""
    open_notebook(page, scratch_notebook("report_in_lab.ipynb", [code]))
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("() => document.body.dataset.jpThemeName === 'JupyterLab Dark'")
    run_all(page)
    assert error_outputs(page) == []
    report = cell_locator(page, 1).locator(".mol-run-report")
    expect(report.locator('details[data-section="curves"] svg.mol-figure')).to_be_visible()
    expect(report.locator("table.mol-groups")).to_contain_text("Muon")
    per_parameter = report.locator('details[data-section="per-parameter"]')
    expect(per_parameter.locator("svg.mol-figure")).to_be_visible()
    text = report.evaluate("e => getComputedStyle(e).color")
    red, green, blue = (int(v) for v in text[text.index("(") + 1:text.index(")")].split(",")[:3])
    assert red + green + blue > 450, f"the report's text must follow the dark theme, found {text}"
    screenshot(report, "report-in-lab-dark")
    screenshot(per_parameter, "report-in-lab-dark-per-parameter")  # below the fold of the one above
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
