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
# The core, bottom to top. A unit imports only the units before it (and itself), eagerly,
# lazily inside a function or by an ``import_module`` string: so no cycle can form. Why
# this order (docs/architecture.md says the same):
CORE_ORDER = [
    # Utilities that know none of the package's concepts: text widths, colours, the
    # backend, the display registry, argument checks of plain kinds; MLX's private
    # side behind one adapter.
    "text_fit.py", "palette.py", "device.py", "display.py", "arguments.py", "mlx_internals.py",
    # Trees of arrays (flatten, unflatten, look up): what every folder above walks.
    "trees",
    # The rule language: reads one parameter's path, shape, dtype and module.
    "rules",
    # Rules applied to a parameter table: assignments and their findings.
    "partition",
    # MultiOptimizer routes by a partition; its state layout is defined here.
    "optimizer",
    # Files: checkpoints of an optimizer's state (checked against that layout), rule files.
    "io",
    # Optimizers described as data, written and read through io.
    "optimizer_file",
    # Data-parallel training: synchronises an optimizer, checkpoints through io.
    "distributed",
    # train(), compile_step, History: drive an optimizer, maybe data-parallel.
    "training",
    # Ready partitions with their optimizers (and copies of optimizers as data).
    "recipes",
]
CORE = CORE_ORDER
# What each layer must not reach: the layers above it and the front-end libraries they use.
FORBIDDEN = {
    **{core: {"multiopt_lab._src.live", "multiopt_lab._src.render", "multiopt_lab.plots",
              "multiopt_lab.widgets", *FRONT_END_LIBRARIES} for core in CORE},
    "render": {"multiopt_lab._src.live", "multiopt_lab.plots", "multiopt_lab.widgets",
               *FRONT_END_LIBRARIES},
    "plots": {"multiopt_lab._src.live", "multiopt_lab._src.render", "multiopt_lab.widgets",
              "ipywidgets", "IPython", "anywidget", "ipykernel"},
    "live": {"multiopt_lab.widgets", *FRONT_END_LIBRARIES - {"matplotlib"}},
    # The run report draws with render and plots (matplotlib only when it draws curves).
    "reporting": {"multiopt_lab._src.live", "multiopt_lab.widgets", *FRONT_END_LIBRARIES - {"matplotlib"}},
    # The command line is an application: it may reach the report (lazily), never the front end.
    "cli.py": {"multiopt_lab._src.live", "multiopt_lab.widgets", *FRONT_END_LIBRARIES - {"matplotlib"}},
}


def _modules_named(tree: ast.AST, package: str = ""):
    """Every module an AST imports, by statement or by an ``import_module("...")`` string;
    ``package`` (``multiopt_lab._src.io``) resolves relative imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and (node.module or node.level):
            module = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"
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


def _unit_of(module: str) -> str | None:
    """The unit of the package (a folder, or a top-level ``name.py``) that ``module`` names;
    ``"multiopt_lab"`` for the package itself, None outside it."""
    parts = module.split(".")
    if parts[0] != "multiopt_lab":
        return None
    if len(parts) > 1:
        if (PACKAGE / parts[1]).is_dir():
            return parts[1]
        if (PACKAGE / f"{parts[1]}.py").exists():
            return f"{parts[1]}.py"
    return "multiopt_lab"  # the package, or a name it exports: above every layer


def _package_of(file: Path) -> str:
    parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts if file.name == "__init__.py" else parts[:-1])


def _upward_imports(order: list[str]) -> list[str]:
    rank = {unit: i for i, unit in enumerate(order)}
    found: dict[tuple, str] = {}  # (file, line, unit reached) -> the first module named there
    for unit in order:
        for file in _layer_files(unit) if (PACKAGE / unit).exists() else ():
            tree = ast.parse(file.read_text(encoding="utf-8"))
            for line, module in _modules_named(tree, _package_of(file)):
                target = _unit_of(module)
                if target is not None and target != unit \
                        and rank.get(target, len(order)) > rank[unit]:
                    found.setdefault((str(file.relative_to(PACKAGE)), line, target), module)
    return [f"{file}:{line} imports {module}, which sits above {file.split('/')[0]} in "
            "CORE_ORDER" for (file, line, _), module in sorted(found.items())]


def test_the_core_folders_import_only_downwards_so_no_cycle_can_form():
    found = _upward_imports(CORE_ORDER)
    assert not found, ("imports against the core's order (move the shared helper down to "
                       "where it belongs, or invert the dependency):\n" + "\n".join(found))


def test_the_core_order_names_every_core_unit_once():
    assert len(set(CORE_ORDER)) == len(CORE_ORDER)
    assert all((PACKAGE / unit).exists() for unit in CORE_ORDER), CORE_ORDER


def test_the_core_order_check_sees_lazy_string_relative_and_root_imports():
    code = ("def late():\n"
            "    from multiopt_lab._src.training.history import History\n"
            "    import importlib; importlib.import_module('multiopt_lab._src.partition.table')\n"
            "    from ..training import history\n"
            "    from multiopt_lab import History\n")
    named = [module for _, module in _modules_named(ast.parse(code), "multiopt_lab._src.rules")]
    units = {_unit_of(m) for m in named}
    assert {"training", "partition", "multiopt_lab"} <= units, named
    assert "multiopt_lab._src.training.history" in named  # the relative import, resolved


def test_the_layering_check_sees_string_imports():
    code = "import importlib\nw = importlib.import_module('multiopt_lab._src.widgets.progress')\n"
    assert ("multiopt_lab._src.widgets.progress" in
            [module for _, module in _modules_named(ast.parse(code))])


def test_io_never_imports_training():
    # io/ sits below training/: the History's file formats, stream and follower work on plain
    # data (io/history_*.py, file_tail.py, line_appender.py); training's History imports them.
    found = [f"{file.relative_to(PACKAGE)}:{line} imports {module}"
             for file in _layer_files("io")
             for line, module in _modules_named(ast.parse(file.read_text(encoding="utf-8")))
             if module == "multiopt_lab._src.training" or module.startswith("multiopt_lab._src.training.")]
    assert not found, "io/ imports training/ (training may import io, never the reverse):\n" + \
        "\n".join(found)
