"""The static checks of a typed package (it ships ``py.typed``): ruff and mypy, clean.

Both read their settings from ``pyproject.toml`` (``[tool.ruff]``, ``[tool.mypy]``)
and run on this checkout's files, whichever copy of the package the other tests
import. The test extra installs both tools; without them these tests fail, saying so.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(tool: str, *arguments: str, timeout: float) -> subprocess.CompletedProcess:
    if importlib.util.find_spec(tool) is None:
        pytest.fail(f"{tool} is not installed in {sys.prefix}; install the test extra "
                    f"(pip install -e '.[test]', or python3 dev.py test, which does)")
    return subprocess.run([sys.executable, "-m", tool, *arguments], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def _clean(result: subprocess.CompletedProcess, what: str) -> None:
    assert result.returncode == 0, (
        f"{what} found problems (exit {result.returncode}); fix them, or silence one with a "
        f"reason on its line:\n{result.stdout}{result.stderr}")


def test_ruff_finds_nothing():
    # Files and rules come from [tool.ruff] in pyproject.toml; no cache left in the checkout.
    _clean(_run("ruff", "check", "--no-cache", "--output-format", "concise", ".", timeout=300),
           "ruff check")


@pytest.mark.slow  # about 40 s without a cache
def test_mypy_finds_nothing():
    # The package, as [tool.mypy] says; its cache goes to a temporary folder, not the checkout.
    with tempfile.TemporaryDirectory(prefix="multiopt_lab-mypy-") as cache:
        result = _run("mypy", "--cache-dir", os.path.join(cache, "mypy"), timeout=600)
    _clean(result, "mypy")
