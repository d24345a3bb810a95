"""Every docstring example of the public API runs and prints what it shows.

The public API (docs/api.md): the modules outside ``multiopt_lab/_src`` (the
package, the documented modules and the entry points), the names their
``__all__`` exports, and those names' methods and properties (their classes'
and their package base classes'). Private modules have no examples: their
behaviour is tested by the tests of their own unit.

One test per docstring that holds examples, so the run counts them. An example
may carry ``# doctest: +SKIP`` only where it cannot run on a test machine (a
second host, a GPU), and then says why in a comment just before it on the same
line: ``>>> launch(...)  # needs two hosts  # doctest: +SKIP`` (doctest allows
nothing but options after ``doctest:``).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
import types

import pytest

import multiopt_lab

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def public_modules() -> list[types.ModuleType]:
    """The package and every module of it outside ``multiopt_lab._src``."""
    modules = [multiopt_lab]
    for info in pkgutil.walk_packages(multiopt_lab.__path__, "multiopt_lab.",
                                      onerror=lambda name: None):
        if not info.name.startswith("multiopt_lab._src"):
            modules.append(importlib.import_module(info.name))
    return modules


def _package_classes(klass: type) -> list[type]:
    """A class and the classes of this package it inherits from (their methods are its methods)."""
    return [k for k in klass.__mro__ if k.__module__.startswith("multiopt_lab")]


def _docstring_tests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found: dict[str, doctest.DocTest] = {}
    seen: set[int] = set()

    def add(tests):
        for test in tests:
            if test.examples and test.name not in found:
                found[test.name] = test

    for module in public_modules():
        if module.__name__.endswith(".__main__"):
            continue  # running its main on import is not a test; the command line has its own
        # The module's docstring and what the module itself defines.
        add(finder.find(module, module.__name__))
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if id(obj) in seen or getattr(obj, "__module__", "") == module.__name__:
                continue  # shown already, or defined in the module itself (found above)
            seen.add(id(obj))
            if inspect.isclass(obj):
                for klass in _package_classes(obj):
                    add(finder.find(klass, f"{module.__name__}.{name}"
                                    + ("" if klass is obj else f"({klass.__name__})")))
            elif inspect.isroutine(obj):
                add(finder.find(obj, f"{module.__name__}.{name}"))
    return sorted(found.values(), key=lambda t: t.name)


TESTS = _docstring_tests()


def test_the_public_api_has_docstring_examples():
    # Every public name has one (tests/test_package.py checks that), with their methods' too.
    assert sum(len(t.examples) for t in TESTS) > 500


def test_examples_live_on_public_names_only():
    # A docstring under _src with an example must be one the public API shows (a public
    # class's method, say); a private module's or helper's examples would test internals.
    public = {(t.filename, t.docstring) for t in TESTS}
    finder = doctest.DocTestFinder(exclude_empty=True)
    private = []
    for info in pkgutil.walk_packages(multiopt_lab.__path__, "multiopt_lab."):
        if info.name.startswith("multiopt_lab._src"):
            module = importlib.import_module(info.name)
            private += [f"{t.name} ({t.filename}:{t.lineno})" for t in finder.find(module, info.name)
                        if t.examples and (t.filename, t.docstring) not in public]
    assert not private, ("docstring examples on private code (move the example to the public "
                         "name that shows this, or make it a unit test):\n" + "\n".join(sorted(private)))


@pytest.mark.parametrize("docstring", TESTS, ids=[t.name for t in TESTS])
def test_docstring_example_runs(docstring, recorded_comm, tmp_path, monkeypatch):
    # recorded_comm: widgets made by an example get a test comm and are closed afterwards.
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    output: list[str] = []
    result = runner.run(docstring, out=output.append, clear_globs=True)
    assert result.failed == 0, "".join(output)
    # A user who pastes the example must not find files in their folder afterwards.
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "the example wrote into the working folder"


SKIP = re.compile(r"#\s*doctest:[^\n]*\+SKIP")
REASON = re.compile(r"#[^#]*\w{3}[^#]*#\s*doctest:")


@pytest.mark.parametrize("docstring", TESTS, ids=[t.name for t in TESTS])
def test_skipped_examples_say_why(docstring):
    for example in docstring.examples:
        for line in example.source.splitlines():
            if SKIP.search(line):
                assert REASON.search(line), (
                    f"{docstring.name}: a skipped example must say why it cannot run, in a "
                    f"comment before the directive ('# needs two hosts  # doctest: +SKIP'): "
                    f"{line.strip()}")
