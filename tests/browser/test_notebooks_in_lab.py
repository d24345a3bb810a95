"""Every tutorial runs top to bottom in JupyterLab with no error and nothing fetched from outside.

Tests that interact with a tutorial's widgets live in their own files; this
one only proves each notebook runs cleanly in a real front end.
"""

from pathlib import Path

import pytest

from lab_page import error_outputs, open_notebook, run_all

pytestmark = pytest.mark.browser

TUTORIALS = sorted(path.name for path in (Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_runs_cleanly_in_lab(name, page, page_guard):
    open_notebook(page, name)
    run_all(page)
    problems = error_outputs(page)
    assert problems == [], "\n".join(str(problem) for problem in problems)
    page_guard.assert_clean()
