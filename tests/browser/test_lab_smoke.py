"""Proves the browser harness: widgets render, round trips work, problems are caught."""

import sys
import time

import pytest

from lab_page import (
    cell_locator, error_outputs, open_notebook, run_all, run_new_cell, start_run_all, wait_for_run_all,
)
from screens import wait_until_looks_different

pytestmark = pytest.mark.browser

WIDGET_CELL = """\
import sys
import ipywidgets

clicks = []
button = ipywidgets.Button(description="Press me")
button.add_class("smoke-button")
answer = ipywidgets.Text(value="not pressed")
answer.add_class("smoke-answer")

def on_press(_):
    clicks.append(1)
    answer.value = f"pressed {len(clicks)} time(s) in the kernel"

button.on_click(on_press)
ipywidgets.VBox([button, answer])"""

PRINT_CELL = 'print("kernel interpreter:", sys.executable)'


def test_widgets_render_and_answer_clicks(page, page_guard, scratch_notebook, screenshot):
    name = scratch_notebook("smoke_widgets.ipynb", [WIDGET_CELL, PRINT_CELL])
    open_notebook(page, name)

    start_run_all(page)
    assert wait_for_run_all(page) == 2
    assert error_outputs(page) == []
    printed = cell_locator(page, 2).locator(".jp-OutputArea-output").inner_text()
    assert printed.strip() == f"kernel interpreter: {sys.executable}"

    widget_cell = cell_locator(page, 1)
    answer = widget_cell.locator(".smoke-answer input")
    assert answer.input_value() == "not pressed"
    before = answer.screenshot(animations="disabled")
    widget_cell.locator(".smoke-button").click()
    wait_until_looks_different(answer, before)
    assert answer.input_value() == "pressed 1 time(s) in the kernel"

    typed = run_new_cell(page, "print(f'clicks seen by Python: {len(clicks)}')")
    assert typed.locator(".jp-OutputArea-output").inner_text().strip() == "clicks seen by Python: 1"

    path = screenshot(widget_cell.locator(".jp-OutputArea-output"), "smoke-widgets")
    assert path.stat().st_size > 1000
    page_guard.assert_clean()


def test_harness_reports_errors_and_blocks_outside_requests(page, page_guard, scratch_notebook):
    failing_handler = (
        "import ipywidgets\n"
        "broken = ipywidgets.Button(description='Raise')\n"
        "broken.add_class('smoke-broken')\n"
        "def fail(_):\n"
        "    raise RuntimeError('handler failed on purpose')\n"
        "broken.on_click(fail)\n"
        "broken"
    )
    name = scratch_notebook("smoke_errors.ipynb", [
        failing_handler,
        "import warnings; warnings.warn('stderr on purpose')",
        "raise ValueError('cell failed on purpose')",
        "print('never reached')",
    ])
    open_notebook(page, name)

    with pytest.raises(AssertionError, match=r"(?s)cells \[4\].*cell failed on purpose"):
        run_all(page)
    cell_locator(page, 1).locator(".smoke-broken").click()
    found = _first_lines_of_error_outputs(page, until=lambda found: any(
        "handler failed on purpose" in text for _, _, text in found))

    assert ("cell 3", "error", "ValueError: cell failed on purpose") in found
    assert any(where == "cell 2" and kind == "stderr" for where, kind, _ in found)
    assert any(kind == "error" and "handler failed on purpose" in text and "outside any cell" in where
               for where, kind, text in found)

    page.evaluate("() => fetch('https://example.org/should-not-load').catch(() => null)")
    page.wait_for_timeout(200)
    assert page_guard.take_outside_requests() == ["https://example.org/should-not-load"]
    # The blocked fetch also logs a console error; that one was on purpose too.
    page_guard.console_errors.clear()
    page_guard.assert_clean()


def _first_lines_of_error_outputs(page, until, timeout_s=30.0):
    """Poll ``error_outputs`` until ``until(found)``: a handler's error arrives asynchronously."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = {(problem.where, problem.kind, problem.text.splitlines()[0]) for problem in error_outputs(page)}
        if until(found) or time.monotonic() > deadline:
            return found
        page.wait_for_timeout(200)
