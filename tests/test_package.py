"""The package's shape: what importing it loads, what it exports, its layers, and who may
import its private implementation (multiopt_lab/_src)."""

import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
PACKAGE = Path(multiopt_lab.__file__).parent
SRC = PACKAGE / "_src"  # the implementation: private, below every public module
FRONT_END_LIBRARIES = {"ipywidgets", "IPython", "matplotlib", "anywidget", "ipykernel", "traitlets"}
# The core, bottom to top, under multiopt_lab/_src. A unit imports only the units before it
# (and itself), eagerly, lazily inside a function or by an ``import_module`` string: so no
# cycle can form. Why this order (docs/architecture.md says the same):
CORE_ORDER = [
    # Utilities that know none of the package's concepts: the version, text widths, colours,
    # the backend, the display registry, argument checks of plain kinds; MLX's private
    # side behind one adapter.
    "version.py", "text_fit.py", "palette.py", "device.py", "display.py", "arguments.py",
    "mlx_internals.py",
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
# The public modules (docs/api.md): the package itself and the documented modules, with
# their entry points run by path. Every other module lives under _src.
PUBLIC_FILES = ["__init__.py", "__main__.py", "plots/__init__.py", "recipes/__init__.py",
                "widgets/__init__.py", "widgets/saved_notebooks.py", "examples/__init__.py",
                "examples/scripts/__init__.py", "examples/scripts/train_data_parallel.py",
                "integrations/__init__.py", "integrations/mlx_lm.py"]
# A layer's units: its folder (or module) under _src, and the public modules that present it.
LAYER_FILES = {"plots": ["plots"], "recipes": ["recipes"], "examples": ["examples"],
               "widgets": ["widgets"], "integrations": ["integrations"]}


def _both(*units: str) -> set[str]:
    """The dotted names of these units: their implementation under _src and their public
    module where there is one (``plots``: ``multiopt_lab._src.plots`` and ``multiopt_lab.plots``)."""
    return {name for unit in units for name in (f"multiopt_lab._src.{unit}", f"multiopt_lab.{unit}")}


# What each layer must not reach: the layers above it and the front-end libraries they use.
# Nothing in the package imports the examples (they use the package, as users do), the
# command line or the integrations (adapters to other trainers, beside the core).
ABOVE_EVERYTHING = _both("examples", "cli", "integrations")
FORBIDDEN = {
    **{core: {*_both("live", "render", "plots", "reporting", "widgets"), *ABOVE_EVERYTHING,
              *FRONT_END_LIBRARIES} for core in CORE},
    "render": {*_both("live", "plots", "reporting", "widgets"), *ABOVE_EVERYTHING,
               *FRONT_END_LIBRARIES},
    "plots": {*_both("live", "render", "reporting", "widgets"), *ABOVE_EVERYTHING,
              "ipywidgets", "IPython", "anywidget", "ipykernel"},
    "live": {*_both("reporting", "widgets"), *ABOVE_EVERYTHING,
             *FRONT_END_LIBRARIES - {"matplotlib"}},
    # The run report draws with render and plots (matplotlib only when it draws curves).
    "reporting": {*_both("live", "widgets"), *ABOVE_EVERYTHING,
                  *FRONT_END_LIBRARIES - {"matplotlib"}},
    # The widgets draw everything below them; they never reach the report or the command line.
    "widgets": {*_both("reporting"), *ABOVE_EVERYTHING},
    # Adapters to other trainers sit beside the core: no views, no front end.
    "integrations": {*_both("live", "render", "plots", "reporting", "widgets", "examples", "cli"),
                     *FRONT_END_LIBRARIES},
    # The examples use the package as users do (through its public names where they can).
    "examples": {*_both("cli", "integrations"), *FRONT_END_LIBRARIES},
    # The command line is an application: it may reach the report (lazily), never the front end.
    "cli.py": {*_both("live", "widgets", "examples", "integrations"),
               *FRONT_END_LIBRARIES - {"matplotlib"}},
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


def _layer_files(layer: str) -> list[Path]:
    """The files of a unit: under _src (``rules``, ``cli.py``), plus its public module's."""
    files = []
    for path in [SRC / layer, *(PACKAGE / unit for unit in LAYER_FILES.get(layer, ()))]:
        if path.suffix == ".py":
            files += [path] if path.exists() else []
        else:
            files += sorted(path.rglob("*.py"))
    return files


def _violations(layer: str) -> list[str]:
    found = []
    for file in _layer_files(layer):
        for line, module in _modules_named(ast.parse(file.read_text(encoding="utf-8")), _package_of(file)):
            if any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN[layer]):
                found.append(f"{file.relative_to(PACKAGE)}:{line} imports {module}")
    return found


def test_every_layer_and_module_of_the_package_is_checked():
    checked = {file for layer in FORBIDDEN for file in _layer_files(layer)}
    every = set(PACKAGE.rglob("*.py"))
    # The package's own __init__ and __main__ sit above every layer; _src/__init__ is empty.
    unchecked = every - checked - {PACKAGE / "__init__.py", PACKAGE / "__main__.py", SRC / "__init__.py"}
    assert not unchecked, ("add these to FORBIDDEN (and LAYER_FILES for a public module) in "
                           f"this test: {sorted(str(f.relative_to(PACKAGE)) for f in unchecked)}")


def test_layers_import_only_downwards_in_the_source():
    found = [v for layer in FORBIDDEN for v in _violations(layer)]
    assert not found, "imports against DESIGN.md's layering:\n" + "\n".join(found)


def test_the_layering_check_is_not_blind():
    # A core module that imported the widgets' public module lazily is found; a layer's files
    # include its public module.
    code = "def late():\n    from multiopt_lab.widgets import LabWidget\n"
    named = [module for _, module in _modules_named(ast.parse(code))]
    assert "multiopt_lab.widgets" in named and "multiopt_lab.widgets" in FORBIDDEN["rules"]
    assert PACKAGE / "plots" / "__init__.py" in _layer_files("plots")
    assert SRC / "plots" / "figures.py" in _layer_files("plots")
    assert _layer_files("cli.py") == [SRC / "cli.py"]


# -- the public modules over the private implementation ---------------------------------------
def _public_files() -> list[Path]:
    return sorted(f for f in PACKAGE.rglob("*.py") if not f.is_relative_to(SRC))


PUBLIC_MODULES = {".".join(("multiopt_lab", *Path(f).with_suffix("").parts)).removesuffix(".__init__")
                  for f in PUBLIC_FILES}


def _is_public_module(module: str) -> bool:
    """Whether a dotted name is a public module or a name one of them exports in its ``__all__``."""
    if module in PUBLIC_MODULES:
        return True
    parent, _, name = module.rpartition(".")
    return parent in PUBLIC_MODULES and name in getattr(importlib.import_module(parent), "__all__", ())


def test_the_public_modules_are_the_documented_ones():
    found = sorted(f.relative_to(PACKAGE).as_posix() for f in _public_files())
    assert found == sorted(PUBLIC_FILES), (
        "a module outside multiopt_lab/_src is public: move it under _src, or add it to "
        "docs/api.md and PUBLIC_FILES here")


def test_the_public_modules_import_only_the_implementation_and_each_other():
    found = []
    for file in _public_files():
        for line, module in _modules_named(ast.parse(file.read_text(encoding="utf-8")), _package_of(file)):
            if module.startswith("multiopt_lab") and not module.startswith("multiopt_lab._src") \
                    and not _is_public_module(module):
                found.append(f"{file.relative_to(PACKAGE)}:{line} imports {module}")
    assert not found, "a public module imports something neither public nor under _src:\n" + "\n".join(found)


#: Imports of a public module from _src, each with the reason it cannot be avoided. None yet:
#: the implementation imports the implementation (``multiopt_lab._src.plots``, never
#: ``multiopt_lab.plots``), so the public modules can be rearranged freely.
SRC_IMPORTS_OF_PUBLIC_MODULES: dict[str, str] = {}


def test_the_implementation_never_imports_the_public_modules():
    found = []
    for file in sorted(SRC.rglob("*.py")):
        for line, module in _modules_named(ast.parse(file.read_text(encoding="utf-8")), _package_of(file)):
            where = f"{file.relative_to(PACKAGE)}:{line}"
            if module.startswith("multiopt_lab") and not module.startswith("multiopt_lab._src") \
                    and f"{where} {module}" not in SRC_IMPORTS_OF_PUBLIC_MODULES:
                found.append(f"{where} imports {module}")
    assert not found, ("_src imports a public module (import the implementation under _src "
                       "instead):\n" + "\n".join(found))


def test_the_public_module_check_sees_a_relative_import_of_the_package():
    code = "from ... import plots\nfrom multiopt_lab import widgets\n"
    named = [m for _, m in _modules_named(ast.parse(code), "multiopt_lab._src.render")]
    assert "multiopt_lab.plots" in named and "multiopt_lab.widgets" in named, named
    assert _is_public_module("multiopt_lab.plots") and _is_public_module("multiopt_lab.Rule")
    assert not _is_public_module("multiopt_lab._src.plots.figures")
    assert not _is_public_module("multiopt_lab.rules")  # where the rules lived before _src


def _unit_of(module: str) -> str | None:
    """The unit of the implementation (a folder, or a top-level ``name.py``, under _src)
    that ``module`` names; ``"multiopt_lab"`` for the public modules and the names they
    export, above every layer; None outside the package."""
    parts = module.split(".")
    if parts[0] != "multiopt_lab":
        return None
    if len(parts) > 2 and parts[1] == "_src":
        if (SRC / parts[2]).is_dir():
            return parts[2]
        if (SRC / f"{parts[2]}.py").exists():
            return f"{parts[2]}.py"
    return "multiopt_lab"  # the package, a public module, or a name one exports


def _package_of(file: Path) -> str:
    parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts if file.name == "__init__.py" else parts[:-1])


def _upward_imports(order: list[str]) -> list[str]:
    rank = {unit: i for i, unit in enumerate(order)}
    found: dict[tuple, str] = {}  # (file, line, unit reached) -> the first module named there
    for unit in order:
        for file in sorted((SRC / unit).rglob("*.py")) if (SRC / unit).is_dir() else [SRC / unit]:
            tree = ast.parse(file.read_text(encoding="utf-8"))
            for line, module in _modules_named(tree, _package_of(file)):
                target = _unit_of(module)
                if target is not None and target != unit \
                        and rank.get(target, len(order)) > rank[unit]:
                    found.setdefault((str(file.relative_to(PACKAGE)), line, unit), module)
    return [f"{file}:{line} imports {module}, which sits above {unit} in CORE_ORDER"
            for (file, line, unit), module in sorted(found.items())]


def test_the_core_folders_import_only_downwards_so_no_cycle_can_form():
    found = _upward_imports(CORE_ORDER)
    assert not found, ("imports against the core's order (move the shared helper down to "
                       "where it belongs, or invert the dependency):\n" + "\n".join(found))


def test_the_core_order_names_every_core_unit_once():
    assert len(set(CORE_ORDER)) == len(CORE_ORDER)
    assert all((SRC / unit).exists() for unit in CORE_ORDER), CORE_ORDER


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
             for file in sorted((SRC / "io").rglob("*.py"))
             for line, module in _modules_named(ast.parse(file.read_text(encoding="utf-8")))
             if module == "multiopt_lab._src.training" or module.startswith("multiopt_lab._src.training.")]
    assert not found, "io/ imports training/ (training may import io, never the reverse):\n" + \
        "\n".join(found)


# -- who imports the implementation ------------------------------------------------------------
# Tests import the public names; a test of a private module's own unit imports it from _src and
# says so in a comment at its top, naming each private module it imports:
#     # Tests the private module multiopt_lab._src.rules.parser's own unit.
# (several: "# Tests the private modules' own units: multiopt_lab._src.a, multiopt_lab._src.b.",
# continued on "#   ..." lines). Benchmarks measure internals and say "# Imports the private
# module(s) ... (benchmarks measure internals)." Tutorials never name _src
# (tests/test_notebook_hygiene.py).
REPO = Path(__file__).resolve().parents[1]
DECLARATIONS = {"tests": "# Tests the private module", "benchmarks": "# Imports the private module"}
_STRING_IMPORT = re.compile(r"(?:^|[\s;])(?:from|import)\s+(multiopt_lab\._src(?:\.\w+)*)")


def private_imports(source: str) -> set[str]:
    """The private modules a file imports: by statement (``from multiopt_lab._src.x import y``
    gives ``multiopt_lab._src.x``, or ``...x.y`` where y is a module), or in code it runs from a
    string (a subprocess, a kernel)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("multiopt_lab._src"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("multiopt_lab._src"):
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if importlib.util.find_spec(node.module) and _is_module(name)
                          else node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.update(_STRING_IMPORT.findall(node.value))
    return found


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def declared_private_modules(source: str, declaration: str) -> set[str]:
    """The modules the comment at the top of a file names (empty without the comment)."""
    lines = source.splitlines()
    start = next((i for i, line in enumerate(lines[:3]) if line.startswith(declaration)), None)
    if start is None:
        return set()
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("#   "):
            break
        block.append(line)
    return set(re.findall(r"multiopt_lab\._src(?:\.\w+)*\w", " ".join(block)))


def _undeclared(source: str, declaration: str) -> set[str]:
    declared = declared_private_modules(source, declaration)
    return {m for m in private_imports(source) if m not in declared}


@pytest.mark.parametrize("folder", sorted(DECLARATIONS))
def test_files_importing_the_implementation_say_which_private_modules(folder):
    if not (REPO / folder).is_dir():
        pytest.skip(f"no {folder}/ next to the tests")
    problems = []
    for file in sorted((REPO / folder).rglob("*.py")):
        if file == Path(__file__).resolve():
            continue  # this file's strings are the checks' own examples
        missing = _undeclared(file.read_text(encoding="utf-8"), DECLARATIONS[folder])
        if missing:
            problems.append(f"{file.relative_to(REPO)}: {', '.join(sorted(missing))}")
    assert not problems, (
        f"these files import private modules without saying so at their top ('{DECLARATIONS[folder]} "
        "multiopt_lab._src.x.y's own unit.'); import the public name instead where there is one:\n"
        + "\n".join(problems))


def test_the_declaration_check_sees_imports_and_code_in_strings():
    source = ("from multiopt_lab._src.rules.parser import parse\n"
              "from multiopt_lab._src.widgets import monitor\n"
              "import multiopt_lab._src.io.atomic as atomic\n"
              "CODE = 'import sys; from multiopt_lab._src.render.html import tree_css'\n")
    assert private_imports(source) == {"multiopt_lab._src.rules.parser", "multiopt_lab._src.widgets.monitor",
                                       "multiopt_lab._src.io.atomic", "multiopt_lab._src.render.html"}
    header = ("# Tests the private modules' own units: multiopt_lab._src.rules.parser,\n"
              "#   multiopt_lab._src.widgets.monitor, multiopt_lab._src.io.atomic.\n")
    assert _undeclared(header + source, DECLARATIONS["tests"]) == {"multiopt_lab._src.render.html"}
    assert _undeclared("import multiopt_lab as mol\n", DECLARATIONS["tests"]) == set()


def test_the_package_ships_py_typed():
    # PEP 561: type checkers read the package's annotations only when this marker is installed
    # beside it (pyproject's package-data); the tests run against the installed package.
    assert (PACKAGE / "py.typed").is_file(), f"no py.typed in {PACKAGE}: add it to package-data"
