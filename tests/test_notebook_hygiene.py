"""Tutorial notebooks are committed run, clean and comparable by nbval.

Checks every ``notebooks/*.ipynb``; the same checks run on deliberately bad
notebooks, the strip tool on scratch files, and the nbval sanitize file on a
notebook whose outputs change on every run.
"""

import importlib.util
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from multiopt_lab.widgets.saved_notebooks import WIDGET_VIEW

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
SANITIZE_FILE = NOTEBOOKS / "nbval_sanitize.cfg"
NAME_PATTERN = re.compile(r"\d{2}_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb")
# A tutorial teaches the public API: its cells (code and text) never name the private modules.
PRIVATE = re.compile(r"multiopt_lab[./]_src\b")
PLANTED_PRIVATE_IMPORT = " ".join(["from", "multiopt_lab._src.rules", "import", "rule"])

_spec = importlib.util.spec_from_file_location("strip_widget_state", REPO / "tools" / "strip_widget_state.py")
strip_widget_state = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(strip_widget_state)


def hygiene_problems(path: Path) -> list[str]:
    """Everything wrong with one committed tutorial notebook, one line each."""
    problems = []
    if not NAME_PATTERN.fullmatch(path.name):
        problems.append(f"name {path.name!r} is not NN_topic.ipynb (two digits, lower-case words joined by _)")
    text = path.read_text(encoding="utf-8")
    notebook = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    try:
        nbformat.validate(notebook)
    except nbformat.ValidationError as error:
        problems.append(f"not a valid nbformat 4 notebook: {error.message}")
    views = [i for i, cell in enumerate(notebook.cells) for output in cell.get("outputs", [])
             if WIDGET_VIEW in output.get("data", {})]
    if "widgets" in notebook.metadata:
        problems.append("metadata.widgets holds widget state: run python tools/strip_widget_state.py")
    elif views:
        problems.append(f"cells {views} keep widget views that cannot render without a kernel "
                        "('model not found'): run python tools/strip_widget_state.py")
    elif strip_widget_state.normalised_text(text) != text:
        problems.append("not normalised (run metadata or formatting): run python tools/strip_widget_state.py")
    if notebook.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append("kernelspec is not 'python3' (the project venv's kernel in tests)")
    first = notebook.cells[0] if notebook.cells else None
    if first is None or first.cell_type != "markdown" or not first.source.startswith("# "):
        problems.append("first cell is not a markdown cell starting with a '# Title' line")
    elif "learn" not in first.source.lower():
        problems.append("first cell does not say what the reader will learn (e.g. 'You will learn ...')")
    private = [i for i, cell in enumerate(notebook.cells) if PRIVATE.search(cell.source)]
    if private:
        problems.append(f"cells {private} name multiopt_lab's private implementation (_src): "
                        "use the public names (docs/api.md)")
    counts = [cell.execution_count for cell in notebook.cells if cell.cell_type == "code"]
    not_run = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code" and cell.execution_count is None]
    if not_run:
        problems.append(f"code cells {not_run} have no outputs (execution_count null): nbval would not compare them")
    elif counts != list(range(1, len(counts) + 1)):
        problems.append(f"execution counts {counts} are not 1, 2, 3...: save it after Restart Kernel and Run All")
    return problems


def _write_notebook(path: Path, cells, metadata=None) -> Path:
    if metadata is None:
        metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}}
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=metadata)
    nbformat.write(notebook, path)
    return path


def _ran(source, count, outputs=()):
    cell = nbformat.v4.new_code_cell(source, execution_count=count)
    cell.outputs = list(outputs)
    return cell


def _good_cells():
    title = nbformat.v4.new_markdown_cell("# Groups\n\nYou will learn how rules pick a group.")
    return [title, _ran("x = 1", 1), _ran("print(x)", 2, [nbformat.v4.new_output("stream", text="1\n")])]


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda path: path.name)
def test_committed_notebook_is_clean(path):
    assert hygiene_problems(path) == []


def test_notebook_numbers_are_unique():
    numbers = [path.name[:2] for path in NOTEBOOKS.glob("*.ipynb") if NAME_PATTERN.fullmatch(path.name)]
    assert sorted(numbers) == sorted(set(numbers)), f"two notebooks share a number: {sorted(numbers)}"


def test_hygiene_accepts_a_clean_notebook(tmp_path):
    assert hygiene_problems(_write_notebook(tmp_path / "01_groups.ipynb", _good_cells())) == []


@pytest.mark.parametrize("name, spoil, expected", [
    ("groups.ipynb", lambda cells, meta: None, "is not NN_topic"),
    ("01_groups.ipynb", lambda cells, meta: cells[1].update(execution_count=None), "have no outputs"),
    ("01_groups.ipynb", lambda cells, meta: cells[2].update(execution_count=7), "are not 1, 2, 3"),
    ("01_groups.ipynb", lambda cells, meta: meta.update(widgets={"state": {}}), "metadata.widgets"),
    ("01_groups.ipynb", lambda cells, meta: cells.pop(0), "first cell is not a markdown"),
    ("01_groups.ipynb", lambda cells, meta: cells[0].update(source="# Groups\n\nRules."), "will learn"),
    ("01_groups.ipynb", lambda cells, meta: meta.pop("kernelspec"), "kernelspec"),
    # A planted cell, not an import of this file (test_package's scan reads code in strings):
    ("01_groups.ipynb", lambda cells, meta: cells[1].update(source=PLANTED_PRIVATE_IMPORT),
     "private implementation"),
    ("01_groups.ipynb", lambda cells, meta: cells[0].update(source=cells[0].source + " See multiopt_lab/_src/rules/."),
     "private implementation"),
])
def test_hygiene_reports_each_problem(tmp_path, name, spoil, expected):
    cells = _good_cells()
    metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}}
    spoil(cells, metadata)
    problems = hygiene_problems(_write_notebook(tmp_path / name, cells, metadata))
    assert len(problems) == 1 and expected in problems[0], problems


def test_hygiene_reports_unnormalised_cell_metadata(tmp_path):
    cells = _good_cells()
    cells[1].metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    problems = hygiene_problems(_write_notebook(tmp_path / "01_groups.ipynb", cells))
    assert len(problems) == 1 and "not normalised" in problems[0]


def test_strip_tool_removes_widget_state_and_is_idempotent(tmp_path):
    cells = _good_cells()
    cells[1].metadata.update(scrolled=True, ExecuteTime={"end_time": "x"}, tags=["keep-me"])
    path = _write_notebook(tmp_path / "01_groups.ipynb", cells)
    raw = json.loads(path.read_text())
    raw["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    path.write_text(json.dumps(raw))

    assert strip_widget_state.main(["--check", str(path)]) == 1
    assert "widgets" in json.loads(path.read_text())["metadata"], "--check must not write"
    assert strip_widget_state.main([str(path)]) == 0
    cleaned = json.loads(path.read_text())
    assert "widgets" not in cleaned["metadata"]
    assert cleaned["cells"][1]["metadata"] == {"tags": ["keep-me"]}
    assert strip_widget_state.main(["--check", str(path)]) == 0
    assert hygiene_problems(path) == []


def test_strip_tool_drops_widget_views_and_keeps_their_other_forms(tmp_path):
    cells = _good_cells()
    view = {"version_major": 2, "version_minor": 0, "model_id": "0123"}
    cells[2].outputs.append(nbformat.v4.new_output("display_data", data={
        WIDGET_VIEW: view, "text/plain": "model  3 params", "text/html": "<ul><li>model</li></ul>"}))
    path = _write_notebook(tmp_path / "01_groups.ipynb", cells)
    assert any("widget views" in problem for problem in hygiene_problems(path))
    assert strip_widget_state.main([str(path)]) == 0
    data = nbformat.read(path, as_version=4).cells[2].outputs[1]["data"]
    assert data == {"text/plain": "model  3 params", "text/html": "<ul><li>model</li></ul>"}
    assert hygiene_problems(path) == []


def test_strip_tool_leaves_every_file_alone_when_one_is_broken(tmp_path):
    good = _write_notebook(tmp_path / "01_groups.ipynb", _good_cells())
    raw = json.loads(good.read_text())
    raw["metadata"]["widgets"] = {}
    good.write_text(json.dumps(raw))
    broken = tmp_path / "02_broken.ipynb"
    broken.write_text("{not json")
    before = good.read_text()
    assert strip_widget_state.main([str(good), str(broken)]) == 2
    assert good.read_text() == before
    with pytest.raises(ValueError, match="02_broken.ipynb: Expected notebook JSON"):
        strip_widget_state.strip_files([good, broken])


# Each cell prints something that differs on every run; its stored output is
# what an earlier run printed. Only the sanitize file makes them compare equal.
VARYING_CELLS = [
    ("import random, sys, tempfile, time\nstart = time.perf_counter()\n"
     "print(f'10 steps took {time.perf_counter() - start:.4f} s, time left 00:0{random.randint(0, 9)}')",
     "stream", "10 steps took 0.5123 s, time left 00:07\n"),
    ("print(object())", "stream", "<object object at 0x7f3a2b1c0d50>\n"),
    ("from IPython.display import HTML; import base64, os\n"
     "HTML(f\"<img src='data:image/png;base64,{base64.b64encode(os.urandom(60)).decode()}'/>\")",
     "html", "<img src='data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
             "nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=='/>"),
    ("import ipywidgets\nclass RuleEditorWidget(ipywidgets.VBox): pass\n"
     "RuleEditorWidget([ipywidgets.IntSlider(value=random.randint(10, 99))])",
     "widget", "RuleEditorWidget(children=(IntSlider(value=3),))"),
    ("ipywidgets.FloatProgress(value=random.random())", "widget", "FloatProgress(value=0.25, max=1.0)"),
    ("n = random.randint(10, 99)\n_ = sys.stderr.write(f'100%|##########| 50/50 [00:0{n % 10}<00:00, {n}.25it/s]\\n')",
     "stderr", "100%|##########| 50/50 [00:03<00:00, 15.97it/s]\n"),
    ("print(f'{random.uniform(1, 9):.1f} µs ± {random.randint(1, 90)} ns per loop "
     "(mean ± std. dev. of 7 runs, {random.randint(1, 9) * 100_000:,} loops each)')",
     "stream", "3.2 µs ± 41 ns per loop (mean ± std. dev. of 7 runs, 100,000 loops each)\n"),
    ("print(f'{random.uniform(1, 99):.2f} steps/s at', time.strftime('%Y-%m-%d %H:%M:%S'))",
     "stream", "41.07 steps/s at 2026-01-02 03:04:05\n"),
    ("print('checkpoint in', tempfile.mkdtemp())", "stream", "checkpoint in /tmp/tmpq1w2e3r4\n"),
    ("display({'text/plain': f\"Training monitor: run 'r', {random.randint(1, 99)} steps recorded\"}, raw=True)",
     "display", "Training monitor: waiting for a run to record its first step"),
]


def _stored_output(kind, text, count):
    if kind in ("stream", "stderr"):
        return nbformat.v4.new_output("stream", name="stdout" if kind == "stream" else "stderr", text=text)
    if kind == "display":
        return nbformat.v4.new_output("display_data", data={"text/plain": text})
    if kind == "html":
        data = {"text/html": text, "text/plain": "<IPython.core.display.HTML object>"}
    else:
        data = {"text/plain": text, "application/vnd.jupyter.widget-view+json":
                {"version_major": 2, "version_minor": 0, "model_id": "0123456789abcdef"}}
    return nbformat.v4.new_output("execute_result", data=data, execution_count=count)


def _run_nbval(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p", "no:cacheprovider",
               "-q", "-rf", "--rootdir", str(folder), *extra, "varying.ipynb", "must_fail.ipynb"]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120)


def test_sanitize_file_makes_varying_outputs_compare_equal(tmp_path):
    cells = [_ran(source, i, [_stored_output(kind, text, i)])
             for i, (source, kind, text) in enumerate(VARYING_CELLS, 1)]
    _write_notebook(tmp_path / "varying.ipynb", cells)
    # A real difference must still fail with the sanitizers on.
    _write_notebook(tmp_path / "must_fail.ipynb", [
        _ran("print('loss 0.25 after 3 s')", 1, [nbformat.v4.new_output("stream", text="loss 0.50 after 4 s\n")])])

    with ThreadPoolExecutor(2) as pool:
        sanitized = pool.submit(_run_nbval, tmp_path, "--nbval-sanitize-with", str(SANITIZE_FILE))
        raw = pool.submit(_run_nbval, tmp_path)
    sanitized, raw = sanitized.result(), raw.result()

    failed = re.findall(r"^FAILED (\S+::Cell \d+)", sanitized.stdout, flags=re.MULTILINE)
    assert failed == ["must_fail.ipynb::Cell 0"], sanitized.stdout[-3000:]
    assert f"{len(VARYING_CELLS)} passed" in sanitized.stdout, sanitized.stdout[-3000:]
    # Without the file every varying cell fails: each sanitizer is needed.
    assert f"{len(VARYING_CELLS) + 1} failed" in raw.stdout, raw.stdout[-3000:]
