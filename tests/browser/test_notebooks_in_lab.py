"""Every tutorial runs top to bottom in JupyterLab with no error and nothing fetched from outside.

Tests that interact with a tutorial's widgets live in their own files; this
one only proves each notebook runs cleanly in a real front end. A tutorial
may show a warning on purpose (02 shows what ``train()`` says about Muon on
norms, 04 and 05 train a split they then correct): a cell's stderr is then
exactly what the saved tutorial shows there, which nbval keeps true; any
other error or stderr output fails.
"""

import json
import re
from pathlib import Path

import pytest

from lab_page import error_outputs, open_notebook, run_all

pytestmark = pytest.mark.browser

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TUTORIALS = sorted(path.name for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
# The cell's file in a warning's location: ipykernel names it after the kernel's process and the code.
CELL_FILE = re.compile(r"/tmp/ipykernel_\d+/\d+\.py")


def warnings_shown_on_purpose(name: str) -> dict[str, str]:
    """``{"cell N": stderr text}`` of the saved tutorial's cells whose stderr holds a FindingWarning."""
    cells = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))["cells"]
    shown = {}
    for index, cell in enumerate(cells):
        text = "".join("".join(output.get("text", "")) for output in cell.get("outputs", [])
                       if output.get("name") == "stderr")
        if "FindingWarning" in text:
            shown[f"cell {index}"] = CELL_FILE.sub("<cell>", text)
    return shown


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_runs_cleanly_in_lab(name, page, page_guard):
    open_notebook(page, name)
    run_all(page)
    expected = warnings_shown_on_purpose(name)
    stderr: dict[str, str] = {}
    problems = []
    for problem in error_outputs(page):
        if problem.kind == "stderr" and problem.where in expected:
            stderr[problem.where] = stderr.get(problem.where, "") + CELL_FILE.sub("<cell>", problem.text)
        else:
            problems.append(str(problem))
    problems += [f"{where}: expected the warning the tutorial shows\n{text}\nfound\n{stderr.get(where)}"
                 for where, text in expected.items() if stderr.get(where) != text]
    assert problems == [], "\n".join(problems)
    page_guard.assert_clean()
