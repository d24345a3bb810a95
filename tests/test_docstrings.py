"""Every docstring example of the installed package runs and prints what it shows.

One test per docstring that holds examples, so the run counts them. An example
may carry ``# doctest: +SKIP`` only where it cannot run on a test machine (a
second host, a GPU), and then says why in a comment just before it on the same
line: ``>>> launch(...)  # needs two hosts  # doctest: +SKIP`` (doctest allows
nothing but options after ``doctest:``).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re

import pytest

import multiopt_lab

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _docstring_tests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for info in pkgutil.walk_packages(multiopt_lab.__path__, "multiopt_lab."):
        module = importlib.import_module(info.name)
        for test in finder.find(module, info.name):
            if test.examples:
                found.append(test)
    return sorted(found, key=lambda t: t.name)


TESTS = _docstring_tests()


def test_the_package_has_docstring_examples():
    assert sum(len(t.examples) for t in TESTS) > 500


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
