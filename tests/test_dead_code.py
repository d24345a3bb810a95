"""No dead code: every name the package or the tests define is used (vulture).

vulture (https://github.com/jendrikseipp/vulture) finds definitions that no
code uses. Two scans:

- The package alone, with the tutorials' code (notebooks/, the users of the
  public API) and the whitelist. The internal modules' ``__all__`` is left
  out, since a name listed there is not used by being listed; the public API
  counts as used (``multiopt_lab.__all__``, the documented modules'
  ``__all__``, and the public members of their classes). So a helper only
  the tests call is dead unless the whitelist says why the tests need it.
- The tests, with the package: a test helper nobody calls is dead too;
  pytest's fixtures are called by name (``@pytest.fixture`` is skipped).

Names that frameworks use by name (IPython, ipywidgets traits, pandas,
pytest) are in ``tests/dead_code_whitelist.py``, each with its reason.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import textwrap
from pathlib import Path

import pytest

import multiopt_lab

vulture = pytest.importorskip("vulture", reason="the test extra installs vulture")

PACKAGE = Path(multiopt_lab.__file__).parent
ROOT = Path(__file__).resolve().parent.parent
WHITELIST = Path(__file__).resolve().parent / "dead_code_whitelist.py"
#: The public API: these modules' ``__all__`` (DESIGN.md, "Public API").
PUBLIC_MODULES = ["multiopt_lab", "multiopt_lab.plots", "multiopt_lab.recipes",
                  "multiopt_lab.widgets", "multiopt_lab.examples",
                  "multiopt_lab.integrations.mlx_lm"]


def _module_file(name: str) -> Path:
    file = Path(importlib.import_module(name).__file__)
    return file.resolve()


def _public_names() -> set[str]:
    """The public modules' ``__all__`` and every public member of their classes
    (methods, properties, class attributes, attributes set on ``self``)."""
    names: set[str] = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            names.add(name)
            obj = getattr(module, name)
            if not inspect.isclass(obj):
                continue
            for klass in obj.__mro__:
                if not klass.__module__.startswith("multiopt_lab"):
                    continue
                names.update(n for n in vars(klass) if not n.startswith("_"))
                tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
                names.update(node.attr for node in ast.walk(tree)
                             if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                             and isinstance(node.value, ast.Name) and node.value.id == "self"
                             and not node.attr.startswith("_"))
    return names


def _without_internal_all(source: str) -> str:
    """``source`` with its module-level ``__all__`` blanked (line numbers kept)."""
    lines = source.splitlines(keepends=True)
    for node in ast.parse(source).body:
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            for i in range(node.lineno - 1, node.end_lineno):
                lines[i] = "\n"
    return "".join(lines)


def _notebook_code(folder: Path) -> str:
    """The code cells of the tutorials, shell and magic lines left out."""
    cells = []
    for notebook in sorted(folder.glob("*.ipynb")):
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                lines = "".join(cell["source"]).splitlines()
                cells.append("\n".join(line for line in lines if not line.lstrip().startswith(("%", "!"))))
    return "\n\n".join(cells)


def _unused(paths: list[Path], *, ignore_names=(), ignore_decorators=()) -> list:
    scan = vulture.Vulture(ignore_names=sorted(ignore_names),
                           ignore_decorators=list(ignore_decorators))
    scan.scavenge([str(p) for p in paths])
    return scan.get_unused_code(min_confidence=0)


def _listed(items, root: Path) -> str:
    return "\n".join(f"{Path(i.filename).relative_to(root)}:{i.first_lineno}: {i.message}"
                     for i in sorted(items, key=lambda i: (str(i.filename), i.first_lineno)))


def test_the_package_defines_nothing_it_does_not_use(tmp_path):
    public_files = {_module_file(m) for m in PUBLIC_MODULES}
    copy = tmp_path / "multiopt_lab"
    for file in PACKAGE.rglob("*.py"):
        source = file.read_text(encoding="utf-8")
        if file.resolve() not in public_files:
            source = _without_internal_all(source)
        target = copy / file.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source, encoding="utf-8")
    users = [copy, WHITELIST]
    notebooks = ROOT / "notebooks"
    if notebooks.is_dir():
        (tmp_path / "tutorials.py").write_text(_notebook_code(notebooks), encoding="utf-8")
        users.append(tmp_path / "tutorials.py")
    unused = [i for i in _unused(users, ignore_names=_public_names())
              if Path(i.filename).is_relative_to(copy)]
    assert not unused, ("unused code in the package: remove it, or, if something outside "
                        "Python uses it by name, add it to tests/dead_code_whitelist.py with "
                        "the reason:\n" + _listed(unused, tmp_path))


def test_the_tests_define_nothing_they_do_not_use():
    tests = Path(__file__).resolve().parent
    unused = [i for i in _unused([tests, PACKAGE], ignore_decorators=["@pytest.fixture"])
              if Path(i.filename).resolve().is_relative_to(tests)]
    assert not unused, ("unused code in the tests: remove it, or add a name a framework uses "
                        "to tests/dead_code_whitelist.py:\n" + _listed(unused, tests))


def test_the_scan_finds_an_unused_function(tmp_path):
    (tmp_path / "m.py").write_text("def used():\n    pass\n\ndef forgotten():\n    pass\n\n"
                                   "used()\n", encoding="utf-8")
    assert [i.name for i in _unused([tmp_path])] == ["forgotten"]
