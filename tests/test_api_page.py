"""docs/api.md lists the public API exactly: every public name and module, and nothing else.

The public API is the ``__all__`` of ``multiopt_lab`` and of the documented
modules, plus the entry points run by name; every other module lives under
``multiopt_lab/_src`` (tests/test_package.py checks that the files outside
``_src`` are these). The page has a ``## `module``` section per module, one
``- `name`: ...`` line per name, and an "Entry points" section.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import multiopt_lab

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "api.md"
PACKAGE = Path(multiopt_lab.__file__).parent
SECTION = re.compile(r"^## (?:`([\w.]+)`|(Entry points))\s*$")
ITEM = re.compile(r"^- `([^`]+)`")


def page_sections(text: str) -> dict[str, list[str]]:
    """``{module: [names listed]}``, and ``"Entry points": [the commands or modules]``."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        header = SECTION.match(line)
        if header:
            current = header.group(1) or header.group(2)
            sections[current] = []
        elif line.startswith("## "):
            current = None
        elif current is not None and (item := ITEM.match(line)):
            sections[current].append(item.group(1))
    return sections


def _entry_point_module(entry: str) -> str:
    """``python -m multiopt_lab`` -> ``multiopt_lab.__main__``; a bare module name -> itself."""
    if entry.startswith("python -m "):
        module = entry.removeprefix("python -m ").split()[0]
        return f"{module}.__main__" if module == "multiopt_lab" else module
    return entry


def _public_modules() -> set[str]:
    """Every module of the installed package outside ``_src``, by dotted name."""
    names = set()
    for file in PACKAGE.rglob("*.py"):
        relative = file.relative_to(PACKAGE.parent).with_suffix("")
        if "_src" in relative.parts:
            continue
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        names.add(".".join(parts))
    return names


def page_problems(text: str) -> list[str]:
    """What the page gets wrong about the package, one line each (empty: exact)."""
    sections = page_sections(text)
    entry_points = sections.pop("Entry points", [])
    problems = []
    for module_name, listed in sections.items():
        module = importlib.import_module(module_name)
        public = list(module.__all__)
        if missing := sorted(set(public) - set(listed)):
            problems.append(f"{module_name}: not on the page: {missing}")
        if extra := sorted(set(listed) - set(public)):
            problems.append(f"{module_name}: on the page but not in its __all__: {extra}")
        if twice := sorted({name for name in listed if listed.count(name) > 1}):
            problems.append(f"{module_name}: listed twice: {twice}")
    documented = set(sections) | {_entry_point_module(entry) for entry in entry_points}
    # A package whose only public content is a documented module (multiopt_lab.integrations).
    parents = {name.rsplit(".", i)[0] for name in documented for i in range(1, name.count(".") + 1)}
    if undocumented := sorted(_public_modules() - documented - parents):
        problems.append(f"public modules the page does not name: {undocumented}")
    for entry in entry_points:
        module = _entry_point_module(entry)
        if importlib.util.find_spec(module) is None:
            problems.append(f"entry point {entry!r}: no module {module}")
    return problems


def test_the_page_lists_the_public_api_exactly():
    assert page_problems(PAGE.read_text(encoding="utf-8")) == []


def test_the_page_names_each_documented_module():
    sections = page_sections(PAGE.read_text(encoding="utf-8"))
    assert set(sections) == {"multiopt_lab", "multiopt_lab.recipes", "multiopt_lab.plots",
                             "multiopt_lab.widgets", "multiopt_lab.examples",
                             "multiopt_lab.integrations.mlx_lm", "Entry points"}
    assert [_entry_point_module(e) for e in sections["Entry points"]] == [
        "multiopt_lab.__main__", "multiopt_lab.widgets.saved_notebooks",
        "multiopt_lab.examples.scripts.train_data_parallel"]


def test_the_check_finds_a_missing_an_extra_and_an_undocumented_name():
    text = PAGE.read_text(encoding="utf-8")
    spoilt = (text.replace("- `assign`:", "- `assign_all`:")
              .replace("- `plot_runs`: several runs overlaid, one line per run.\n", "")
              .replace("## `multiopt_lab.integrations.mlx_lm`", "## Integrations"))
    problems = "\n".join(page_problems(spoilt))
    assert "multiopt_lab: not on the page: ['assign']" in problems
    assert "on the page but not in its __all__: ['assign_all']" in problems
    assert "multiopt_lab.plots: not on the page: ['plot_runs']" in problems
    assert "public modules the page does not name: ['multiopt_lab.integrations'," in problems


def test_the_readme_links_the_page():
    assert "(docs/api.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
