"""The README works as written: every code block in it runs.

Python blocks run in order in one Jupyter kernel (they build on each other,
and ``display`` and rich output need a kernel), as a reader pasting them
into a notebook would. Shell blocks run in a temporary folder with the
virtual environment activated (its ``bin`` first on ``PATH``), as the README
tells the reader to; a command that cannot run here says why below, and a
command this file does not know fails the test until it is listed. TOML
blocks must parse, and are the rule file the ``check`` command reads.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)

# Shell commands that do not run here, and why.
NOT_RUN_HERE = {
    r"python3 dev\.py (lab|test)\b": "sets up .venv and runs this very suite (or opens JupyterLab); CI runs it",
    r"conda env create\b": "conda is not installed on the test machine",
    r"source \.venv/bin/activate$": "the test activates the environment itself (its bin first on PATH)",
    r"jupyter lab --ServerApp\.jpserver_extensions=": "starts a JupyterLab server; the browser tests run theirs "
                                                     "with this very option (tests/browser/lab_process.py)",
}
# The user's own package that the README's check command names: a stand-in.
STAND_IN_PACKAGE = {
    "mypackage/__init__.py": "",
    "mypackage/models.py": "from multiopt_lab.examples import TinyGPT\n\n\ndef build_model():\n"
                           "    return TinyGPT(vocab_size=32)\n",
}


def blocks(language: str) -> list[str]:
    return [code for lang, code in FENCE.findall(README.read_text(encoding="utf-8")) if lang == language]


def shell_commands() -> list[str]:
    commands = []
    for block in blocks("bash"):
        for command in re.sub(r"\\\n\s*", " ", block).splitlines():
            command = re.sub(r"\s+#.*$", "", command).strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def activated_environment() -> dict[str, str]:
    """What ``source .venv/bin/activate`` sets: the environment's bin first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "VIRTUAL_ENV": str(Path(bin_dir).parent)}


def test_the_readme_has_code_to_check():
    assert blocks("python") and shell_commands() and blocks("toml")


@pytest.mark.slow
def test_python_blocks_run_in_order_in_a_kernel(tmp_path):
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(code) for code in blocks("python")]
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    # The first look, pasted as one cell, shows the split as a tree; so does the recipe's block.
    for index in (0, 1):
        shown = [output.data for output in notebook.cells[index].outputs if output.output_type == "execute_result"]
        assert shown and 'class="mol-root' in shown[-1].get("text/html", ""), (
            f"block {index + 1}, pasted as one cell, shows no tree:\n{notebook.cells[index].source}")
    problems = []
    for i, cell in enumerate(notebook.cells):
        for output in cell.outputs:
            if output.output_type == "error":
                problems.append(f"block {i + 1}:\n{cell.source}\n--> {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr":
                problems.append(f"block {i + 1} wrote to stderr:\n{output.text}")
    assert problems == [], "\n\n".join(problems)
    assert all(cell.execution_count for cell in notebook.cells)


def test_toml_blocks_parse():
    for block in blocks("toml"):
        tomllib.loads(block)


def how_to_run(command: str) -> str | None:
    """Why ``command`` does not run here, or None when it does."""
    for pattern, reason in NOT_RUN_HERE.items():
        if re.match(pattern, command):
            return reason
    return None


@pytest.mark.parametrize("command", shell_commands())
def test_shell_command_runs_as_written(command, tmp_path):
    reason = how_to_run(command)
    if reason is not None:
        pytest.skip(f"not run here: {reason}")
    if command.startswith("pip install "):
        # As written, in the checkout's folder, as into a fresh environment (--ignore-installed:
        # a name pip finds only because it is installed here does not count), touching nothing
        # (--dry-run); the dependencies are this environment's, so they are not fetched again.
        dry_run = "pip install --dry-run --ignore-installed --no-deps --no-build-isolation --quiet --report - "
        result = subprocess.run(["bash", "-c", command.replace("pip install ", dry_run, 1)], cwd=ROOT,
                                env=activated_environment(), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        (installed,) = json.loads(result.stdout)["install"]
        assert installed["metadata"]["name"] == "multiopt_lab"
        assert set(installed.get("requested_extras") or []) <= set(installed["metadata"]["provides_extra"])
        return
    known = ("python -m multiopt_lab ", "mlx.launch ")
    assert command.startswith(known), (
        f"the README has a command this test does not know how to run: {command!r}; run it here "
        "(add its set-up to this file) or list it in NOT_RUN_HERE with the reason")
    for name, text in STAND_IN_PACKAGE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    for block in blocks("toml"):
        if "[[group]]" in block or "[[groups]]" in block:
            (tmp_path / "rules.toml").write_text(block)
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=activated_environment(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command}\nexit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
