"""Fixtures for tests that drive JupyterLab in a real Chromium.

One JupyterLab server and one browser serve the whole session; every test
gets a fresh browser context and page with JupyterLab loaded.

Without Chromium (``/usr/bin/chromium``, or ``MULTIOPT_LAB_CHROMIUM``) the tests
skip with a loud warning, unless ``MULTIOPT_LAB_REQUIRE_BROWSER=1`` (CI sets
it): then they fail.

Example:
    >>> def test_tour(page, screenshot):                  # doctest: +SKIP
    ...     open_notebook(page, "01_tour.ipynb")
    ...     run_all(page)
    ...     assert error_outputs(page) == []
    ...     screenshot(cell_locator(page, 3), "tour-tree")
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

# The helpers sit next to this file; keep them importable under any
# --import-mode (importlib mode does not put test folders on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab_page import open_lab, shut_down_kernels
from lab_process import LabServer
from page_guard import PageGuard
from screens import save_screenshot

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO_ROOT / "notebooks"
ARTIFACTS = Path(os.environ.get("MULTIOPT_LAB_ARTIFACTS", REPO_ROOT / "test-artifacts"))
CHROMIUM = os.environ.get("MULTIOPT_LAB_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("MULTIOPT_LAB_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
SKIPPED_KEY = pytest.StashKey[str]()
REPORTS_KEY = pytest.StashKey[dict]()


def browser_unavailable_reason() -> str | None:
    """Why browser tests cannot run here, or ``None`` when they can."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (f"no Chromium executable at {CHROMIUM}: install it (apt-get install chromium) "
                "or point MULTIOPT_LAB_CHROMIUM at one")
    for module, package in (("playwright", "playwright"), ("jupyterlab", "jupyterlab"),
                            ("ipykernel", "ipykernel")):
        if importlib.util.find_spec(module) is None:
            return f"the Python package {package} is missing: pip install -e '.[test]'"
    return None


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    item.stash.setdefault(REPORTS_KEY, {})[report.when] = report
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    # Check the page right after the test body, so a problem is a FAILED test
    # (with artifacts) rather than an error at teardown.
    result = yield
    guard = item.funcargs.get("page_guard") if hasattr(item, "funcargs") else None
    if guard is not None:
        guard.assert_clean()
    return result


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    reason = config.stash.get(SKIPPED_KEY, None)
    if reason:
        terminalreporter.write_sep("!", "BROWSER TESTS WERE SKIPPED", red=True, bold=True)
        terminalreporter.write_line(f"Reason: {reason}.", red=True, bold=True)
        terminalreporter.write_line(
            "Nothing visual was checked. Set MULTIOPT_LAB_REQUIRE_BROWSER=1 to make this a failure.",
            red=True, bold=True)


@pytest.fixture(scope="session")
def chromium_path(request) -> str:
    """Path of the Chromium to drive; skips (or fails, when required) without one."""
    reason = browser_unavailable_reason()
    if reason is None:
        return CHROMIUM
    if REQUIRE_BROWSER:
        pytest.fail(f"MULTIOPT_LAB_REQUIRE_BROWSER=1 but {reason}.", pytrace=False)
    request.config.stash[SKIPPED_KEY] = reason
    pytest.skip(f"BROWSER TESTS SKIPPED: {reason.upper()}")


@pytest.fixture(scope="session")
def lab_notebook_dir(tmp_path_factory, chromium_path) -> Path:
    """A temporary copy of ``notebooks/``: the server root, free to rewrite."""
    target = tmp_path_factory.mktemp("lab") / "notebooks"
    if NOTEBOOKS.is_dir():
        shutil.copytree(NOTEBOOKS, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    else:
        target.mkdir()
    return target


@pytest.fixture(scope="session")
def lab_server(request, tmp_path_factory, lab_notebook_dir):
    """The session's JupyterLab server over ``lab_notebook_dir``; its log is kept on failure."""
    server = LabServer(lab_notebook_dir, tmp_path_factory.mktemp("jupyter"))
    started = False
    try:
        server.start()
        started = True
        yield server
    finally:
        server.stop()
        if not started or request.session.testsfailed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "jupyterlab.log").write_text(server.log_text())


@pytest.fixture(scope="session")
def browser(chromium_path):
    """One headless Chromium for the session, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page_guard(lab_server) -> PageGuard:
    """Records outside requests (blocked), page errors and console errors of ``page``."""
    return PageGuard(allowed_host="127.0.0.1")


@pytest.fixture
def page(request, browser, lab_server, page_guard):
    """A fresh page with JupyterLab loaded; fails the test on any ``page_guard`` problem."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page_guard.attach(context)
    lab = context.new_page()
    page_guard.watch(lab)
    try:
        open_lab(lab, lab_server.url)
    except Exception:
        _save_failure_artifacts(request.node.name, lab, page_guard)
        context.close()
        raise
    yield lab
    reports = request.node.stash.get(REPORTS_KEY, {})
    failed = "call" in reports and reports["call"].failed
    if failed:
        _save_failure_artifacts(request.node.name, lab, page_guard)
    try:
        shut_down_kernels(lab)
    except Exception as error:  # A broken page must not hide the test's own result.
        print(f"Could not shut the kernels down from the page: {error}", file=sys.stderr)
    context.close()
    if not failed:
        page_guard.assert_clean()


@pytest.fixture
def screenshot():
    """``screenshot(locator, name)`` saves ``test-artifacts/screenshots/<name>.png``."""
    folder = ARTIFACTS / "screenshots"
    return lambda locator, name: save_screenshot(locator, name, folder)


@pytest.fixture
def scratch_notebook(lab_notebook_dir):
    """``scratch_notebook(name, code_cells)`` writes a notebook into the server root."""

    def write(name: str, code_cells: list[str], title: str = "# Scratch notebook for a browser test"):
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {
            "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        notebook.cells = [nbformat.v4.new_markdown_cell(title)]
        notebook.cells += [nbformat.v4.new_code_cell(source) for source in code_cells]
        nbformat.write(notebook, lab_notebook_dir / name)
        return name

    return write


def _save_failure_artifacts(test_name: str, lab, page_guard: PageGuard) -> None:
    folder = ARTIFACTS / "failures"
    folder.mkdir(parents=True, exist_ok=True)
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in test_name)
    try:
        lab.locator("#main").screenshot(path=str(folder / f"{safe_name}.png"), timeout=10_000)
    except Exception as error:  # A broken page must not hide the test's own failure.
        print(f"Could not screenshot the failed page: {error}", file=sys.stderr)
    lines = page_guard.console_log + ["", *page_guard.problems()]
    (folder / f"{safe_name}.console.txt").write_text("\n".join(lines))
