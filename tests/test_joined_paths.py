# Tests the private module multiopt_lab._src.rules.joined's own unit.
"""Path tests answered for many rows in one scan of the joined paths (issue 24).

``glob("*x*")``, ``"x" in path`` and ``regex()`` over a column ask once
about the paths joined by newlines: the answers must be those of asking
each path alone, whatever the paths (non-ASCII, lone surrogates, empty) and
whichever rows are asked about.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from multiopt_lab import ParameterTable, rule
from multiopt_lab._src.rules.joined import JoinedPaths, contains_rows

ZERO = mx.zeros((2,))
PATHS = st.lists(st.text(alphabet="ab.1é_\ud800", max_size=6), min_size=16, max_size=60, unique=True)
# Paths where a 2- or 3-character text is rare enough to be scanned.
SPARSE = st.lists(st.text(alphabet="abcdefghij.é\ud800", min_size=1, max_size=8), min_size=30, max_size=80,
                  unique=True)


def table_of(paths):
    return ParameterTable([(p, ZERO) for p in paths])


def rare(paths, text) -> bool:
    """Few enough occurrences that a scan answers (else path by path costs less)."""
    return sum(p.count(text) for p in paths) * 10 <= len(paths) if text else True


@settings(max_examples=300, deadline=None)
@given(PATHS, st.text(alphabet="ab.1é\ud800", max_size=3), st.data())
def test_contains_over_many_rows_equals_each_path_alone(paths, text, data):
    table = table_of(paths)
    found = contains_rows(table, np.arange(len(paths)), text)
    assert (found is not None) == rare(paths, text)
    if found is not None:
        assert found.tolist() == [text in p for p in paths]
    subset = np.array(sorted(data.draw(st.sets(st.integers(0, len(paths) - 1), min_size=len(paths) // 2))))
    found = contains_rows(table, subset, text)
    if found is not None:
        assert found.tolist() == [text in paths[i] for i in subset]


@settings(max_examples=200, deadline=None)
@given(SPARSE, st.text(alphabet="abcdefghij.é\ud800", min_size=2, max_size=3))
def test_a_rare_text_is_found_by_the_scan_in_the_rows_that_hold_it(paths, text):
    found = contains_rows(table_of(paths), np.arange(len(paths)), text)
    assert (found is not None) == rare(paths, text)
    assert found is None or found.tolist() == [text in p for p in paths]


def test_a_text_in_one_path_of_many_is_scanned():
    paths = [f"layers.{i}.w" for i in range(100)] + ["embed.w"]
    assert contains_rows(table_of(paths), np.arange(101), "embed").nonzero()[0].tolist() == [100]
    assert contains_rows(table_of(paths), np.arange(101), "w") is None  # everywhere: path by path


@settings(max_examples=100, deadline=None)
@given(PATHS, st.sampled_from(['glob("*a.*")', '"b" in path', '"1" not in path', 'glob("*é*")',
                               'regex(r"^a|1$")', 'not glob("**") or "a" in path',
                               'ndim == 1 and ("a" in path or regex("b$"))', '"é" in path']))
def test_rules_over_a_column_equal_the_rule_on_each_parameter(paths, text):
    table = table_of(paths)
    r = rule(text)
    assert r.select(table).tolist() == [r(p, ZERO) for p in paths]


def test_a_newline_in_the_text_or_a_path_is_asked_path_by_path():
    paths = [f"p{i}" for i in range(20)]
    assert contains_rows(table_of(paths), np.arange(20), "p1\np") is None
    assert JoinedPaths.of(paths + ["a\nb"]) is None
    table = table_of(paths + ["a\nb"])
    assert rule('"a\\nb" in path').select(table).tolist() == [False] * 20 + [True]
    assert rule('glob("*1\\np*")').select(table_of(paths)).tolist() == [False] * 20


def test_few_or_unsorted_rows_are_asked_path_by_path():
    table = table_of([f"p{i}" for i in range(40)])
    assert contains_rows(table, np.arange(5), "p") is None  # too few to prepare a scan
    assert contains_rows(table, np.array([3, 2] + list(range(4, 30))), "p") is None
    assert contains_rows(table, np.arange(0, 40, 10), "p") is None
