"""The package's shape: what importing it loads, and what it exports."""

import subprocess
import sys

import multiopt_lab


def test_import_loads_no_front_end_libraries():
    code = (
        "import sys, multiopt_lab\n"
        "bad = sorted(m for m in ('ipywidgets', 'IPython', 'matplotlib') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"import multiopt_lab loaded {result.stdout.strip()}"


def test_every_exported_name_exists_and_has_a_docstring_with_an_example():
    for name in multiopt_lab.__all__:
        obj = getattr(multiopt_lab, name)
        if name.startswith("__"):
            continue
        doc = getattr(obj, "__doc__", None) or ""
        assert doc.strip(), f"multiopt_lab.{name} has no docstring"
        assert "Example" in doc or ">>>" in doc, f"multiopt_lab.{name}'s docstring has no example"
