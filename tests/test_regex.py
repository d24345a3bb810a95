# Tests the private module multiopt_lab._src.rules.matching's own unit.
"""``regex()`` in rules: linear-time matching (RE2) whatever the pattern, clear refusals.

Python's ``re`` backtracks: ``(.|\\w)*z`` never finished on a 39-character
mlx-lm path, and a rule editor keystroke or ``python -m multiopt_lab check``
hung with it. Hostile patterns run in a subprocess with a time limit, so a
regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import mlx.core as mx
import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from multiopt_lab import RuleError, by_regex, rule
from multiopt_lab._src.rules.matching import RegexUnsupported, linear_search

MLX_LM_PATH = "model.layers.0.self_attn.q_proj.weight"  # 39 characters

#: Each backtracks exponentially (or as a high power of the length) in Python's re.
HOSTILE = [
    r"(.|\w)*z",
    r"(a|a)*b",
    r"(a+)+b",
    r"(.*)*x",
    r"(x+x+)+y",
    r"(a{1,30}){1,30}b",
    "a{0,30}" * 7 + "b",
    ".*.*.*.*.*.*x",
    r"(\w+\.)*\w+z",
]

HOSTILE_RUN = textwrap.dedent("""
    import json, sys, time
    import mlx.core as mx
    import multiopt_lab as mol
    patterns, paths = json.loads(sys.argv[1])
    seconds = {}
    for pattern in patterns:
        r = mol.rule(f"regex({pattern!r})")
        start = time.perf_counter()
        hits = [r(path, mx.zeros((2,))) for path in paths]
        seconds[pattern] = time.perf_counter() - start
        assert hits == [False] * len(paths), (pattern, hits)
    # The whole tree at once, as the rule editor and the CLI assign it.
    tree = {f"p{i}": mx.zeros((2,)) for i in range(3)}
    tree["model"] = {"layers": [{"self_attn": {"q_proj": {"weight": mx.zeros((2, 2))}}}]}
    assignment = mol.assign(tree, [f"regex({p!r})" for p in patterns[:3]] )
    print(json.dumps(seconds))
""")


def test_hostile_regexes_are_accepted_and_match_in_linear_time():
    paths = [MLX_LM_PATH, "a" * 54, "a" * 10_000, MLX_LM_PATH * 250]
    done = subprocess.run([sys.executable, "-c", HOSTILE_RUN, json.dumps([HOSTILE, paths])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seconds = json.loads(done.stdout)
    # Every pattern against a 10,000-character path: milliseconds with RE2, never minutes.
    assert max(seconds.values()) < 5.0, seconds


def test_a_match_at_the_end_of_a_long_path_is_found():
    search = linear_search(r"(.|\w)*z")
    assert search(MLX_LM_PATH * 1000 + "z") is not None  # a match ends the search early


def test_globs_stay_linear_too():
    # fnmatch translates each * into an atomic lazy scan: no backtracking across them.
    r = rule('glob("*a*a*a*a*a*a*a*a*b")')
    assert r("a" * 100_000 + "c", mx.zeros((2,))) is False
    assert r("a" * 9 + "b", mx.zeros((2,))) is True


@pytest.mark.parametrize("text, words, column", [
    (r'regex(r"(a)\1")', "backreferences", 11),
    (r'regex(r"(?P<x>a)(?P=x)")', "backreferences", 16),
    (r'regex(r"ab(?=c)")', "lookahead (?=...) is not supported", 10),
    (r'regex(r"ab(?!c)")', "negative lookahead", 10),
    (r'ndim == 2 and regex(r"x(?<=a)")', "lookbehind (?<=...)", 23),
    (r'regex(r"x(?<!a)")', "negative lookbehind", 9),
    (r'regex(r"(?>ab)c")', "atomic groups and possessive repeats", 8),
    (r'regex(r"a++")', "atomic groups and possessive repeats", 9),
    (r'regex(r"bias\Z")', r"write \z or $", 12),
    ('regex("a(")', "invalid regular expression: missing )", 8),
    ('regex("xy)z")', "invalid regular expression: unexpected )", 9),
    ('regex("ab[z-a]")', "invalid character class range", 10),
    ('regex("a{1001}")', "invalid repetition size", 8),
    ('regex("\\ud800")', "lone surrogate", 7),
])
def test_what_re2_cannot_express_is_refused_at_its_column(text, words, column):
    with pytest.raises(RuleError) as info:
        rule(text)
    assert words in info.value.message
    assert info.value.column == column, str(info.value)
    assert "RE2" in info.value.message or "invalid" in info.value.message or "surrogate" in info.value.message


def test_a_refused_pattern_prints_nothing(capfd):
    # RE2 logs every pattern it refuses to stderr unless told not to.
    with pytest.raises(RuleError):
        rule(r'regex(r"(?=a)")')
    assert capfd.readouterr().err == ""


def test_by_regex_is_checked_the_same_way():
    with pytest.raises(RuleError, match="lookahead"):
        by_regex(r"weight(?=\.)")
    assert by_regex(r"(a|a)*b")("aab", mx.zeros((2,))) is True


def test_unsupported_pattern_error_says_where():
    with pytest.raises(RegexUnsupported) as info:
        linear_search(r"layers\.(\d)\.\1")
    assert info.value.index == len(r"layers\.(\d)\.")


@pytest.mark.parametrize("path", ["a\udc80.norm.weight", "\ud800", "naïve.ß.weight", ""])
def test_paths_that_are_not_plain_text_do_not_raise(path):
    assert (linear_search(r"\.norm\.")(path) is not None) == (".norm." in path)


PATTERNS = st.lists(st.sampled_from(["a", "b", ".", r"\.", r"\d", "[ab]", "[^a]", "(a|b)", "x"]),
                    min_size=1, max_size=4).flatmap(
    lambda atoms: st.tuples(st.just(atoms), st.lists(st.sampled_from(["", "*", "+", "?", "{1,2}"]),
                                                     min_size=len(atoms), max_size=len(atoms))))


@settings(max_examples=200, deadline=None)
@given(PATTERNS, st.text(alphabet="ab.1x", max_size=12))
def test_answers_equal_re2s_public_search_and_pythons_re(parts, path):
    atoms, repeats = parts
    pattern = "".join(a + r for a, r in zip(atoms, repeats))
    ours = linear_search(pattern)(path) is not None
    options = re2.Options()
    options.log_errors = False
    assert ours == (re2.compile(pattern, options).search(path) is not None)
    assert ours == (re.search(pattern, path) is not None)  # same meaning on plain patterns


# A column of paths is matched in one scan of the paths joined by newlines
# (issue 24): the scan must answer what matching each path alone answers.
SCAN_ATOMS = ["a", "b", ".", r"\.", r"\d", "[ab]", "[^a]", r"\s", r"\W", r"\b", r"\B", "^", "$",
              "(a|b)", "(|a)", r"\n", "x", "é", "(?i:A)", "(?s:.)", r"\pL", "[[:space:]]"]
SCAN_PATTERNS = st.lists(st.tuples(st.sampled_from(SCAN_ATOMS), st.sampled_from(["", "*", "+", "?", "{0,2}"])),
                         min_size=1, max_size=5).map(lambda parts: "".join(a + r for a, r in parts))
SCAN_PATHS = st.lists(st.text(alphabet="ab.1x é_", max_size=8), min_size=1, max_size=40)


def scan(pattern, paths, rows=None):
    from multiopt_lab._src.rules.matching import JoinedPaths
    import numpy as np
    search = linear_search(pattern)
    rows = np.arange(len(paths)) if rows is None else np.asarray(rows, dtype=np.intp)
    return search.many(JoinedPaths.of(paths), rows).tolist(), [search(paths[i]) is not None for i in rows]


@settings(max_examples=400, deadline=None)
@given(SCAN_PATTERNS, SCAN_PATHS, st.data())
def test_one_scan_over_joined_paths_answers_what_each_path_alone_answers(pattern, paths, data):
    try:
        search = linear_search(pattern)
    except RegexUnsupported:
        return
    assert search.many is not None, pattern
    joined, alone = scan(pattern, paths)
    assert joined == alone, (pattern, paths)
    rows = sorted(data.draw(st.sets(st.integers(0, len(paths) - 1))))
    joined, alone = scan(pattern, paths, rows)
    assert joined == alone, (pattern, paths, rows)


@pytest.mark.parametrize("pattern, paths, expected", [
    ("^b", ["a", "b", "ab", "ba"], [False, True, False, True]),            # ^ at each path's start
    ("a$", ["a", "b", "ab", "ba"], [True, False, False, True]),            # $ at each path's end
    ("^$", ["a", "", "b", ""], [False, True, False, True]),                # the empty path
    (r"a\nb", ["xa", "by"], [False, False]),                               # never across two paths
    (r"a\sb", ["xa", "by"], [False, False]),
    (r"a[^c]b", ["xa", "by", "a.b"], [False, False, True]),
    (r"\bw", ["w", "aw", "a.w"], [True, False, True]),                     # a newline is no word character
    ("x*", ["", "a"], [True, True]),                                       # empty matches
])
def test_anchors_and_newlines_in_the_scan(pattern, paths, expected):
    joined, alone = scan(pattern, paths)
    assert joined == alone == expected


@pytest.mark.parametrize("pattern", [r"\Aa", r"a\z", r"a\Cb", r"(?-m:^a)", r"(?i-s)^a"])
def test_patterns_that_read_the_whole_text_are_matched_path_by_path(pattern):
    assert linear_search(pattern).many is None
    r = rule(f"regex({pattern!r})")
    paths = {f"p{i}": mx.zeros((2,)) for i in range(40)} | {"a": mx.zeros((2,)), "ab": mx.zeros((2,))}
    from multiopt_lab import assign
    chosen = assign(paths, [r]).paths_of("group_0")
    assert chosen == tuple(p for p in paths if r(p, mx.zeros((2,))))


def test_a_path_holding_a_newline_is_matched_path_by_path():
    from multiopt_lab import assign
    from multiopt_lab._src.rules.matching import JoinedPaths
    tree = {f"p{i}": mx.zeros((2,)) for i in range(40)} | {"a\nb": mx.zeros((2,))}
    assert JoinedPaths.of(list(tree)) is None
    assert assign(tree, ['regex("^b")']).paths_of("group_0") == ()
    assert assign(tree, ['regex("a.b|^p1$")']).paths_of("group_0") == ("p1",)


HOSTILE_SCAN = textwrap.dedent("""
    import json, sys, time
    import mlx.core as mx
    import multiopt_lab as mol
    patterns, paths = json.loads(sys.argv[1])
    tree = {"layers": [{"w": mx.zeros((2,))} for _ in range(2000)]}
    tree.update({f"x{i}": mx.zeros((2,)) for i in range(len(paths))})
    table = mol.ParameterTable.from_tree(tree)
    table = mol.ParameterTable(list(zip([*table.paths[:2000], *paths], table.arrays)))
    seconds = {}
    for pattern in patterns:
        start = time.perf_counter()
        chosen = mol.assign(table, [f"regex({pattern!r})"]).paths_of("group_0")
        seconds[pattern] = time.perf_counter() - start
        assert chosen == (), (pattern, chosen)
    print(json.dumps(seconds))
""")


def test_hostile_regexes_stay_linear_in_one_scan_of_many_paths():
    paths = [MLX_LM_PATH, "a" * 54, "a" * 10_000, MLX_LM_PATH * 250]
    done = subprocess.run([sys.executable, "-c", HOSTILE_SCAN, json.dumps([HOSTILE, paths])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seconds = json.loads(done.stdout)
    assert max(seconds.values()) < 5.0, seconds


@pytest.mark.parametrize("pattern", [r"w$", r"^l", r"\d\.w", "x*"])
def test_a_scan_where_most_rows_match_goes_on_path_by_path_with_the_same_answers(pattern):
    # 32 matches, most rows matching: the scan hands the rest to path-by-path matching.
    paths = [f"l{i}.w" for i in range(150)] + [f"m{i}.b" for i in range(50)] + [f"l{i}.w" for i in range(150, 200)]
    joined, alone = scan(pattern, paths)
    assert joined == alone
    joined, alone = scan(pattern, paths, list(range(0, 200, 2)) + list(range(201, 250)))
    assert joined == alone
