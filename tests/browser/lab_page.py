"""Drive a JupyterLab page: open a notebook, run it, read its errors.

The page must come from a server started with
``--LabApp.expose_app_in_browser=True`` (``LabServer`` does): commands run
through ``window.jupyterapp``, exactly what a menu click would run, without
depending on where menus happen to be drawn.

Example:
    >>> open_lab(page, server.url)                  # doctest: +SKIP
    >>> notebook = open_notebook(page, "01_tour.ipynb")  # doctest: +SKIP
    >>> run_all(page)                                # doctest: +SKIP
    >>> error_outputs(page)                          # doctest: +SKIP
    []
"""

from __future__ import annotations

import re

from lab_scripts import (
    CELL_STATES, FIND_PANEL, KERNEL_PROBLEMS, OPEN_AND_WATCH, OUTPUT_PROBLEMS, PREPARE_NEW_CELL,
    RUN_ALL_DONE, START_RUN_ALL,
)

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# JupyterLab's widget manager asks every new kernel for widget state through
# a comm; until ipywidgets is imported, ipykernel answers on stderr. Harmless.
WIDGET_HANDSHAKE_NOISE = re.compile(
    r"No such comm target registered: jupyter\.widget\.control|No such comm: [0-9a-f-]+")


def open_lab(page, base_url: str, timeout_ms: int = 60_000) -> None:
    """Load JupyterLab with a fresh workspace and wait until it is restored.

    Example:
        >>> open_lab(page, "http://127.0.0.1:40123")  # doctest: +SKIP
    """
    page.goto(f"{base_url}/lab?reset", timeout=timeout_ms)
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=timeout_ms)
    page.evaluate("() => window.jupyterapp.restored.then(() => true)")
    page.locator("#jp-main-statusbar").wait_for(timeout=timeout_ms)


def open_notebook(page, name: str, timeout_ms: int = 90_000):
    """Open ``name`` (relative to the server root), wait for an idle kernel.

    Also starts recording every error and stderr message the kernel sends,
    including those from widget callbacks that belong to no cell.

    Returns:
        Locator: the notebook panel.

    Example:
        >>> panel = open_notebook(page, "01_tour.ipynb")  # doctest: +SKIP
        >>> panel.locator(".jp-Cell").count()             # doctest: +SKIP
        12
    """
    panel_id = page.evaluate(OPEN_AND_WATCH, name)
    _wait(page, f"{FIND_PANEL} return kernelIdle(panel(name));", timeout_ms,
          f"the kernel of {name} to start and be idle", name)
    return page.locator(f'[id="{panel_id}"]')


def start_run_all(page, name: str | None = None) -> None:
    """Clear all outputs and start Run All (``runmenu:run-all``) without waiting.

    For tests that act while cells run (watch a monitor redraw during
    training); finish with ``wait_for_run_all``.

    Example:
        >>> start_run_all(page)                                  # doctest: +SKIP
        >>> wait_until_looks_different(monitor_canvas)           # doctest: +SKIP
        >>> wait_for_run_all(page)                               # doctest: +SKIP
        7
    """
    page.evaluate(START_RUN_ALL, name)


def wait_for_run_all(page, name: str | None = None, timeout_ms: int = 180_000) -> int:
    """Wait until a started Run All is done and the kernel is idle; check every cell ran.

    Args:
        name (str, optional): Notebook path; the current notebook when ``None``.
        timeout_ms (int, optional): Milliseconds to wait. Default: ``180_000``.

    Returns:
        int: how many code cells ran.

    Raises:
        AssertionError: a code cell did not run (usually an earlier cell
            raised); the message lists the error outputs.

    Example:
        >>> wait_for_run_all(page)  # doctest: +SKIP
        7
    """
    _wait(page, RUN_ALL_DONE, timeout_ms, "Run All to finish and the kernel to be idle", name)
    states = page.evaluate(CELL_STATES, name)
    not_run = [cell["index"] for cell in states if cell["count"] is None]
    if not_run:
        problems = "\n".join(str(problem) for problem in error_outputs(page, name))
        raise AssertionError(
            f"Expected every code cell to run, but cells {not_run} (0-based) did not. "
            f"Error outputs:\n{problems or '(none; was the kernel restarted or interrupted?)'}"
        )
    return len(states)


def run_all(page, name: str | None = None, timeout_ms: int = 180_000) -> int:
    """Clear all outputs, run every cell, wait until done: ``start_run_all`` + ``wait_for_run_all``.

    Example:
        >>> run_all(page)  # doctest: +SKIP
        7
    """
    start_run_all(page, name)
    return wait_for_run_all(page, name, timeout_ms)


def error_outputs(page, name: str | None = None) -> list[OutputProblem]:
    """Every error and stderr output: in cells, and outside them (widget callbacks).

    Example:
        >>> error_outputs(page)  # doctest: +SKIP
        [OutputProblem(where='cell 3', kind='error', text="ValueError: boom ...")]
    """
    in_cells = page.evaluate(OUTPUT_PROBLEMS, name)
    outside = [item for item in page.evaluate(KERNEL_PROBLEMS, name)
               if not (item["kind"] == "stderr" and WIDGET_HANDSHAKE_NOISE.fullmatch(item["text"].strip()))]
    return [OutputProblem(item["where"], item["kind"], ANSI_ESCAPE.sub("", item["text"]))
            for item in in_cells + outside]


def run_new_cell(page, code: str, name: str | None = None, timeout_ms: int = 60_000):
    """Add a code cell at the end by typing, as a user would, run it, wait.

    Presses ``b`` then ``Enter`` in command mode (otherwise keys act as
    shortcuts), inserts ``code`` without key-by-key auto-closing of brackets,
    then runs the cell with ``Ctrl+Enter``.

    Returns:
        Locator: the new cell.

    Example:
        >>> cell = run_new_cell(page, "print(1 + 1)")  # doctest: +SKIP
        >>> cell.locator(".jp-OutputArea-output").inner_text()  # doctest: +SKIP
        '2\\n'
    """
    index = page.evaluate(PREPARE_NEW_CELL, name)
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.insert_text(code)
    page.keyboard.press("Control+Enter")
    _wait(page, f"{FIND_PANEL} const p = panel(name); const cell = p.content.model.cells.get({int(index)});"
          " return !!cell && cell.executionCount !== null && kernelIdle(p);",
          timeout_ms, f"the new cell {index} to run", name)
    return cell_locator(page, index, name)


def cell_locator(page, index: int, name: str | None = None):
    """Locator of the cell at ``index`` (0-based, markdown cells count too).

    Example:
        >>> cell_locator(page, 2).locator(".smoke-button").click()  # doctest: +SKIP
    """
    panel_id = page.evaluate(f"name => {{ {FIND_PANEL} return panel(name).id; }}", name)
    return page.locator(f'[id="{panel_id}"] .jp-Notebook .jp-Cell').nth(index)


def shut_down_kernels(page) -> None:
    """Shut down every kernel of the server, so the next test starts from nothing.

    Example:
        >>> shut_down_kernels(page)  # doctest: +SKIP
    """
    page.evaluate("""async () => {
      const services = window.jupyterapp.serviceManager;
      await services.sessions.shutdownAll();
      await services.kernels.shutdownAll();
      return true;
    }""")


class OutputProblem:
    """One error or stderr output: where it appeared, its kind and its text.

    Example:
        >>> OutputProblem("cell 2", "error", "ValueError: boom")
        OutputProblem(where='cell 2', kind='error', text='ValueError: boom')
    """

    def __init__(self, where: str, kind: str, text: str):
        self.where, self.kind, self.text = where, kind, text

    def __repr__(self) -> str:
        return f"OutputProblem(where={self.where!r}, kind={self.kind!r}, text={self.text!r})"

    def __str__(self) -> str:
        return f"--- {self.kind} in {self.where} ---\n{self.text}"


def _wait(page, body: str, timeout_ms: int, what: str, argument=None) -> None:
    try:
        page.wait_for_function(f"name => {{ {body} }}", arg=argument, timeout=timeout_ms, polling=250)
    except Exception as error:  # Playwright's TimeoutError; keep the context.
        if type(error).__name__ != "TimeoutError":
            raise
        raise AssertionError(f"Timed out after {timeout_ms / 1000:.0f} s waiting for {what}.") from error

