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


# -- layering, read from the code -------------------------------------------------------------
# An import done only inside a kernel (or by ``importlib.import_module("...")``) never shows in
# ``sys.modules`` after a plain import, so the layers are also checked in the source itself.
import ast
from pathlib import Path

PACKAGE = Path(multiopt_lab.__file__).parent
FRONT_END_LIBRARIES = {"ipywidgets", "IPython", "matplotlib", "anywidget", "ipykernel", "traitlets"}
CORE = ["rules", "partition", "optimizer", "optimizer_file", "training", "io", "distributed",
        "recipes", "display.py", "palette.py", "device.py", "arguments.py", "text_fit.py",
        "mlx_internals.py"]
# What each layer must not reach: the layers above it and the front-end libraries they use.
FORBIDDEN = {
    **{core: {"multiopt_lab.live", "multiopt_lab.render", "multiopt_lab.plots",
              "multiopt_lab.widgets", *FRONT_END_LIBRARIES} for core in CORE},
    "render": {"multiopt_lab.live", "multiopt_lab.plots", "multiopt_lab.widgets",
               *FRONT_END_LIBRARIES},
    "plots": {"multiopt_lab.live", "multiopt_lab.render", "multiopt_lab.widgets",
              "ipywidgets", "IPython", "anywidget", "ipykernel"},
    "live": {"multiopt_lab.widgets", *FRONT_END_LIBRARIES - {"matplotlib"}},
    # The run report draws with render and plots (matplotlib only when it draws curves).
    "reporting": {"multiopt_lab.live", "multiopt_lab.widgets", *FRONT_END_LIBRARIES - {"matplotlib"}},
    # The command line is an application: it may reach the report (lazily), never the front end.
    "cli.py": {"multiopt_lab.live", "multiopt_lab.widgets", *FRONT_END_LIBRARIES - {"matplotlib"}},
}


def _modules_named(tree: ast.AST):
    """Every module an AST imports, by statement or by an ``import_module("...")`` string."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"import_module", "__import__", "find_spec"}:
                yield node.lineno, node.args[0].value


def _layer_files(layer: str):
    path = PACKAGE / layer
    return [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))


def _violations(layer: str) -> list[str]:
    found = []
    for file in _layer_files(layer):
        for line, module in _modules_named(ast.parse(file.read_text(encoding="utf-8"))):
            if any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN[layer]):
                found.append(f"{file.relative_to(PACKAGE)}:{line} imports {module}")
    return found


def test_every_layer_and_module_of_the_package_is_checked():
    checked = {PACKAGE / layer for layer in FORBIDDEN}
    top = {p for p in PACKAGE.iterdir() if (p.is_dir() and (p / "__init__.py").exists())
           or (p.suffix == ".py" and p.name not in {"__init__.py", "__main__.py"})}
    # The package itself, the examples and the widgets sit above every layer.
    unchecked = top - checked - {PACKAGE / "examples", PACKAGE / "widgets", PACKAGE / "integrations"}
    assert not unchecked, f"add these to FORBIDDEN in this test: {sorted(map(str, unchecked))}"


def test_layers_import_only_downwards_in_the_source():
    found = [v for layer in FORBIDDEN for v in _violations(layer)]
    assert not found, "imports against DESIGN.md's layering:\n" + "\n".join(found)


def test_the_layering_check_sees_string_imports():
    code = "import importlib\nw = importlib.import_module('multiopt_lab.widgets.progress')\n"
    assert ("multiopt_lab.widgets.progress" in
            [module for _, module in _modules_named(ast.parse(code))])
