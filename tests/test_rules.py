"""The rule language: semantics, the bulk evaluator, every refused construct, limits."""

from __future__ import annotations

import fnmatch
import pickle
import re

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multiopt_lab import ParameterTable, Rule, RuleError, as_rule, by_glob, by_ndim, by_regex, rule

PARAMS = {
    "embed": {"weight": mx.zeros((10, 4))},
    "layers": [
        {"attn": {"q": {"weight": mx.zeros((4, 4))}}, "norm": {"weight": mx.zeros((4,)), "bias": mx.zeros((4,))}},
        {"conv": {"weight": mx.zeros((8, 3, 3, 4), dtype=mx.bfloat16)}, "fc": {"bias": mx.zeros((8,))}},
    ],
    "lm_head": {"weight": mx.zeros((10, 4))},
    "scale": mx.zeros(()),
}
TABLE = ParameterTable.from_tree(PARAMS)


def selected(text: str) -> list[str]:
    return [p for p, hit in zip(TABLE.paths, rule(text).select(TABLE)) if hit]


class TestSemantics:
    @pytest.mark.parametrize("text, expected", [
        ("ndim == 2", ["embed.weight", "layers.0.attn.q.weight", "lm_head.weight"]),
        ('name == "bias"', ["layers.0.norm.bias", "layers.1.fc.bias"]),
        ('dtype == "bfloat16"', ["layers.1.conv.weight"]),
        ("size > 100", ["layers.1.conv.weight"]),
        ("shape == (4, 4)", ["layers.0.attn.q.weight"]),
        ("shape == ()", ["scale"]),
        ("ndim >= 2 and shape[-1] == 4 and shape[0] == 10", ["embed.weight", "lm_head.weight"]),
        ('glob("layers.*.weight")', ["layers.0.attn.q.weight", "layers.0.norm.weight", "layers.1.conv.weight"]),
        (r'regex(r"^layers\.1\.")', ["layers.1.conv.weight", "layers.1.fc.bias"]),
        ('"norm" in path', ["layers.0.norm.weight", "layers.0.norm.bias"]),
        ('ndim == 2 and not glob("*embed*") and "lm_head" not in path', ["layers.0.attn.q.weight"]),
        ("ndim in (0, 4)", ["layers.1.conv.weight", "scale"]),
        ("8 in shape", ["layers.1.conv.weight", "layers.1.fc.bias"]),
        ("2 < ndim <= 4", ["layers.1.conv.weight"]),
        ('path[:6] == "layers" and name[0] == "b"', ["layers.0.norm.bias", "layers.1.fc.bias"]),
        ("shape[1:] == (3, 3, 4)", ["layers.1.conv.weight"]),
        ("ndim == 1 or ndim == 0 or size >= 100.5", ["layers.0.norm.weight", "layers.0.norm.bias",
                                                     "layers.1.conv.weight", "layers.1.fc.bias", "scale"]),
        ("not (ndim != 0)", ["scale"]),
        ("ndim == -(-2) and shape[0] < 5", ["layers.0.attn.q.weight"]),
        ("True and False", []),
        ('name in ("bias", "scale") and path != "layers.1.fc.bias"', ["layers.0.norm.bias", "scale"]),
        ('dtype < "c" and ndim > 3', ["layers.1.conv.weight"]),
    ])
    def test_selects(self, text, expected):
        assert selected(text) == expected

    @pytest.mark.parametrize("text", [
        "ndim == 2", 'glob("*weight") and ndim == 1', "ndim == 2 and shape[1] > 3 or ndim == 0",
        '"attn" in path or not (size > 10 and dtype == "float32")', "ndim > 0 and shape[0] in (8, 10) and 4 in shape",
        'name != "bias" and (ndim >= 4 and shape[3] == 4 or regex("q"))',
    ])
    def test_bulk_agrees_with_per_parameter_call(self, text):
        r = rule(text)
        one_by_one = [r(p, a) for p, a in zip(TABLE.paths, TABLE.arrays)]
        assert r.select(TABLE).tolist() == one_by_one
        rows = np.array([5, 1, 3])
        assert r.select(TABLE, rows).tolist() == [one_by_one[i] for i in rows]

    def test_and_short_circuits_like_python(self):
        # shape[1] would fail on 1-D and 0-D parameters; the guard keeps it away from them.
        assert selected("ndim == 2 and shape[1] == 4") == ["embed.weight", "layers.0.attn.q.weight", "lm_head.weight"]
        assert selected("ndim < 2 or shape[1] == 3") == [
            "layers.0.norm.weight", "layers.0.norm.bias", "layers.1.conv.weight", "layers.1.fc.bias", "scale"]
        assert selected("ndim >= 4 and shape[3] == 4") == ["layers.1.conv.weight"]

    def test_returns_plain_bools(self):
        r = rule("ndim == 2")
        assert r("w", mx.zeros((2, 2))) is True
        assert r("w", mx.zeros((2,))) is False
        assert r.select(TABLE).dtype == np.bool_

    def test_glob_star_crosses_dots_and_is_case_sensitive(self):
        assert rule('glob("*q*")')("layers.0.attn.q.weight", mx.zeros((1,)))
        assert not rule('glob("*Q*")')("layers.0.attn.q.weight", mx.zeros((1,)))

    def test_whitespace_and_newlines_are_allowed(self):
        assert rule("  ndim == 2\n  and size > 1 ")("w", mx.zeros((2, 2)))

    def test_rule_works_as_a_multioptimizer_filter(self):
        from models import groups_by_mlx
        groups = groups_by_mlx(PARAMS, [rule('ndim == 2 and "lm" not in path')])
        assert [p for p, g in groups.items() if g == 0] == ["embed.weight", "layers.0.attn.q.weight"]


class TestErrors:
    @pytest.mark.parametrize("text, fragment, column", [
        ("ndims == 2", "unknown name 'ndims'; did you mean 'ndim'?", 0),
        ("ndim == 2 and shpe[0] == 1", "did you mean 'shape'?", 14),
        ("foo == 1", "unknown name 'foo'; the names are path", 0),
        ("glob(*embed*)", "expected a string", 5),
        ("glob(embed)", "expected a string", 5),
        ("glob('a', 'b')", "exactly one pattern", 0),
        ("glob(pattern='a')", "exactly one pattern", 0),
        ("glob == 1", "glob is a function", 0),
        ("len(path) > 2", "unknown function 'len'", 0),
        ("path.startswith('a')", "attribute access", 0),
        ("path.__class__ == 1", "attribute access", 0),
        ("(lambda: True)()", "only glob(), regex() and within() can be called", 1),
        ("lambda: True", "lambdas are not allowed", 0),
        ("[x for x in shape] == 1", "comprehensions", 0),
        ("any(x > 1 for x in shape)", "unknown function 'any'", 0),
        ("2 ** 100 > size", "'**' is not part of the rule language", 0),
        ("size + 1 > 2", "'+' is not part of", 0),
        ("ndim == 2 & ndim == 3", "'&' (write 'and')", 8),
        ("~(ndim == 2)", "'~' is not allowed", 0),
        ("*shape == 1", "not a valid rule", 0),
        ("ndim in (*shape,)", "starred", 9),
        ('f"{ndim}" == "2"', "f-strings", 0),
        ("shape == [2, 2]", "list literals", 9),
        ("ndim in {1, 2}", "set literals", 8),
        ("{} == {}", "dict literals", 0),
        ("ndim if True else size", "conditional expressions", 0),
        ("(n := ndim) == 2", "assignment expressions", 1),
        ("ndim is 2", "'is' is not part", 8),
        ("ndim == None", "None is not allowed", 8),
        ('ndim == "2"', "expected an int to compare with, found a string", 8),
        ('ndim < "2"', "expected an int", 7),
        ('path > 3', "expected a string to compare with, found an int", 7),
        ("ndim in 'abc'", "'in' on a string needs a string on its left", 8),
        ("ndim in 3", "'in' needs a string or a tuple on its right, found an int", 8),
        ('size in ("a", "b")', "always False", 8),
        ("ndim", "a rule must be a condition", 0),
        ("ndim and True", "needs conditions", 0),
        ("not size", "needs conditions", 4),
        ('-path == "a"', "expected a number after the sign", 1),
        ('shape["a"] == 1', "expected an int index", 6),
        ("ndim[0] == 1", "only shape, strings and tuples can be indexed", 0),
        ("(1, 2)[5] == 1", "out of range", 0),
        ("True < False", "cannot be ordered", 7),
        ("ndim == 2 # a comment", "comments", 10),
        ("ndim ==", "ends too early", 7),
        ("ndim = 2", "write ==", 5),
        ("import os", "not a valid rule", 0),
        ("__import__('os')", "unknown function '__import__'", 0),
        ('regex("a(")', "invalid regular expression", 8),
        (r'regex(r"(a)\1")', "backreferences", 11),
        ("ndim == 1\x00", "null character", 9),
        ("ndim == 2;", "invalid syntax", 9),
        ('path == b"x"', "b'x' is not allowed", 8),
        ("", "empty rule", None),
        ("   ", "empty rule", None),
    ])
    def test_refused_with_message_and_column(self, text, fragment, column):
        with pytest.raises(RuleError) as info:
            rule(text)
        assert fragment in info.value.message
        assert info.value.column == column
        assert info.value.text == text

    def test_rule_error_is_value_error_and_shows_a_caret(self):
        with pytest.raises(ValueError) as info:
            rule("ndim == 2 and glob(*embed*)")
        assert str(info.value) == (
            'expected a string, e.g. glob("*embed*")\n'
            "  ndim == 2 and glob(*embed*)\n"
            "                     ^"
        )

    def test_caret_counts_characters_not_bytes(self):
        with pytest.raises(RuleError) as info:
            rule('name == "é" and ndims == 1')
        assert info.value.column == 16
        assert str(info.value).splitlines()[2] == "  " + " " * 16 + "^"

    def test_caret_on_the_right_line_of_a_multiline_rule(self):
        with pytest.raises(RuleError) as info:
            rule("ndim == 2\nand ndims == 1")
        assert info.value.column == 14
        assert str(info.value).splitlines()[1:] == ["  and ndims == 1", "      ^"]

    def test_error_pickles(self):
        err = pickle.loads(pickle.dumps(RuleError("m", "t", 0, "p")))
        assert (err.message, err.text, err.column, err.path) == ("m", "t", 0, "p")

    def test_non_string_text_is_a_type_error(self):
        with pytest.raises(TypeError, match="must be a str"):
            rule(3)


class TestLimits:
    def test_length_bounded(self):
        with pytest.raises(RuleError, match="at most 2000"):
            rule("ndim == 1 or " * 200 + "True")

    @pytest.mark.parametrize("text", [
        "(" * 900 + "True" + ")" * 900,
        "[" * 1500,
        "(" * 31 + "True" + ")" * 31,
    ])
    def test_bracket_nesting_bounded_before_parsing(self, text):
        with pytest.raises(RuleError, match="nested more than"):
            rule(text)

    @pytest.mark.parametrize("text", ["not " * 400 + "True", "-" * 1900 + "1 == ndim"])
    def test_tree_depth_bounded(self, text):
        with pytest.raises(RuleError, match="nested more than 50 levels"):
            rule(text)

    def test_long_string_literal_refused(self):
        with pytest.raises(RuleError, match="longer than 256"):
            rule(f'path == "{"a" * 300}"')

    def test_a_backtracking_shape_of_regex_runs_in_linear_time(self):
        # RE2 never backtracks: tests/test_regex.py has the hostile patterns.
        assert rule('regex("(x+x+)+y")')("x" * 10_000, mx.zeros((2,))) is False

    def test_flat_long_rules_within_bounds_are_fine(self):
        text = " or ".join(f"size == {i}" for i in range(100))
        assert rule(text)("w", mx.zeros((99,)))


class TestRuntimeFailures:
    def test_index_out_of_range_names_path_and_suggests_a_guard(self):
        r = rule("shape[1] == 4")
        with pytest.raises(RuleError) as info:
            r.select(TABLE)
        err = info.value
        assert err.path == "layers.0.norm.weight"
        assert "(shape (4,), float32)" in err.message and "guard it: ndim >= 2 and ..." in err.message
        assert err.column == 0

    def test_per_parameter_call_reports_the_same(self):
        with pytest.raises(RuleError, match="(?s)'b'.*ndim >= 3"):  # a long message breaks between words
            rule("ndim == 1 and shape[-3] == 1")("b", mx.zeros((2,)))

    def test_failing_callable_names_the_path(self):
        def boom(path, array):
            raise KeyError("nope")
        with pytest.raises(RuleError, match=r"<callable boom> raised KeyError on 'embed.weight'") as info:
            as_rule(boom).select(TABLE)
        assert info.value.path == "embed.weight"

    def test_callable_returning_non_bool_is_reported(self):
        with pytest.raises(RuleError, match=r"(?s)returned array .* on 'embed.weight'.*bool\(\.\.\.\)"):
            as_rule(lambda p, a: a.sum() > 0).select(TABLE)

    def test_numpy_bools_are_accepted(self):
        assert as_rule(lambda p, a: np.bool_(True))("w", mx.zeros((1,))) is True


class TestRuleObject:
    def test_text_label_names_repr(self):
        r = rule('ndim == 2 and not glob("*embed*")', label="muon")
        assert (r.text, r.label) == ('ndim == 2 and not glob("*embed*")', "muon")
        assert r.names == frozenset({"ndim", "path"})
        assert r.depends_on_values is False
        assert repr(r) == "Rule('ndim == 2 and not glob(\"*embed*\")', label='muon')"
        assert rule("size > 1").names == frozenset({"size"})

    def test_with_label_keeps_the_rule(self):
        r = rule("ndim == 1").with_label("adamw")
        assert r.label == "adamw" and r.text == "ndim == 1"
        assert r == rule("ndim == 1") and hash(r) == hash(rule("ndim == 1"))

    def test_equality_by_text(self):
        assert rule("ndim == 1") != rule("ndim == 2")
        assert len({rule("ndim == 1"), rule("ndim == 1", "x")}) == 1

    def test_operators_combine_expressions(self):
        a, b, c = rule("ndim == 2"), rule("size > 4 or ndim == 0"), by_glob("*embed*")
        assert (a & ~c).text == 'ndim == 2 and not glob("*embed*")'
        assert (a & b).text == "ndim == 2 and (size > 4 or ndim == 0)"
        assert (a | b).text == "ndim == 2 or size > 4 or ndim == 0"
        assert (~b).text == "not (size > 4 or ndim == 0)"
        assert (~a).text == "not (ndim == 2)"
        assert (a & "ndim == 3").text == "ndim == 2 and ndim == 3"
        assert ("ndim == 3" | a).text == "ndim == 3 or ndim == 2"
        assert selected((a & ~c).text) == ["layers.0.attn.q.weight", "lm_head.weight"]

    def test_operators_with_callables(self):
        def is_head(path, array):
            return path.startswith("lm_head")
        combined = rule("ndim == 2") & is_head
        assert combined.text is None and combined.names is None
        assert combined.depends_on_values is True
        assert [p for p, h in zip(TABLE.paths, combined.select(TABLE)) if h] == ["lm_head.weight"]
        assert (~as_rule(is_head))("lm_head.weight", mx.zeros((1,))) is False
        assert (as_rule(is_head) | "ndim == 0").select(TABLE).sum() == 2
        assert "is_head" in repr(combined)

    def test_as_rule(self):
        r = rule("ndim == 1")
        assert as_rule(r) is r
        assert as_rule("ndim == 1") == r
        assert as_rule("ndim == 1", label="x").label == "x"
        f = lambda p, a: True  # noqa: E731
        wrapped = as_rule(f)
        assert wrapped.function is f and wrapped.text is None and wrapped.depends_on_values
        assert as_rule(f) == wrapped
        assert as_rule(f, structural=True).depends_on_values is False
        with pytest.raises(TypeError, match="expected a rule string, a Rule or a callable"):
            as_rule(3)

    def test_structural_attribute_on_callable(self):
        def by_name(path, array):
            return path.endswith("bias")
        by_name.structural = True
        assert as_rule(by_name).depends_on_values is False

    def test_factories_are_expressions(self):
        assert by_ndim(2) == rule("ndim == 2")
        assert by_glob("*.bias").text == 'glob("*.bias")'
        assert by_regex(r"layers\.\d+\.").text == r'regex(r"layers\.\d+\.")'
        assert by_glob('we"ird\\').text == r'glob("we\"ird\\")'
        assert by_glob('we"ird\\')('we"ird\\', mx.zeros((1,)))
        with pytest.raises(TypeError):
            by_ndim("2")
        with pytest.raises(TypeError):
            by_glob(None)

    def test_whitespace_edits_share_a_cache_key(self):
        assert rule("ndim==2").cache_key == rule(" ndim == 2 ").cache_key
        assert rule("ndim==2").cache_key != rule("ndim==3").cache_key

    def test_is_a_rule(self):
        assert isinstance(rule("True"), Rule)


# --- Property tests: the language means what Python means; hostile text only raises RuleError.
# The oracle runs the same text through Python itself (test code only; the package
# never evaluates text) with the features bound as variables.

PPARAMS = {
    "embed": {"weight": mx.zeros((10, 4))},
    "layers": [{"attn": {"q": {"weight": mx.zeros((4, 4))}, "norm": {"bias": mx.zeros((4,))}},
                "conv": {"weight": mx.zeros((2, 3, 3, 4), dtype=mx.float16)}}],
    "lm_head": {"weight": mx.zeros((10, 4))},
    "scale": mx.zeros(()),
}
PTABLE = ParameterTable.from_tree(PPARAMS)

ints = st.one_of(st.sampled_from(["ndim", "size", "shape[0]", "shape[-1]", "shape[1]"]),
                 st.integers(-3, 40).map(str))
strs = st.one_of(st.sampled_from(["path", "name", "dtype", "path[:6]", "name[-4:]"]),
                 st.sampled_from(['"weight"', '"bias"', '"layers"', '"float32"', '"q"', '""']))
tuples = st.lists(st.integers(0, 10), max_size=3).map(lambda xs: "(" + "".join(f"{x}, " for x in xs) + ")")
ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
patterns = st.sampled_from(["*weight", "layers.*", "*.q.*", "*", "embed*", "*[0-9]*"])


def leaves():
    return st.one_of(
        st.tuples(ints, ops, ints).map(" ".join),
        st.tuples(strs, ops, strs).map(" ".join),
        st.tuples(strs, st.sampled_from(["in", "not in"]), strs).map(" ".join),
        st.tuples(ints, st.sampled_from(["in", "not in"]), tuples).map(" ".join),
        st.tuples(st.just("shape"), st.sampled_from(["==", "!=", "<"]), tuples).map(" ".join),
        patterns.map(lambda p: f'glob("{p}")'),
        st.sampled_from([r"\.\d\.", "^l", "s$", "a.t"]).map(lambda p: f'regex(r"{p}")'),
        st.sampled_from(["True", "False"]),
    )


expressions = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        inner.map(lambda e: f"not ({e})"),
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
    ),
    max_leaves=6,
)


def reference(text: str, path: str, array) -> bool:
    shape = tuple(array.shape)
    env = {"path": path, "name": path.rpartition(".")[2], "ndim": len(shape), "shape": shape,
           "size": array.size, "dtype": str(array.dtype).rpartition(".")[2],
           "glob": lambda p: fnmatch.fnmatchcase(path, p),
           "regex": lambda p: re.search(p, path) is not None}
    return bool(eval(text, {"__builtins__": {}}, env))  # test oracle only


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_same_result_as_python(text):
    try:
        r = rule(text)
    except RuleError:
        return  # statically refused (e.g. a tuple holding no number): nothing to compare
    expected, failure = [], None
    for path, array in zip(PTABLE.paths, PTABLE.arrays):
        try:
            expected.append(reference(text, path, array))
        except IndexError:
            failure = failure or path
            expected.append(None)
    if failure is None:
        assert r.select(PTABLE).tolist() == expected
        assert [r(p, a) for p, a in zip(PTABLE.paths, PTABLE.arrays)] == expected
    else:
        try:
            r.select(PTABLE)
        except RuleError as err:
            assert err.path == failure
        else:
            raise AssertionError(f"{text!r} should fail on {failure}")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("()[]{}'\"\\*+-~!=<>.,:;#@%^&|` \nabnotdimshape0123456789_glob")),
               max_size=80))
def test_any_text_parses_or_raises_rule_error(text):
    try:
        r = rule(text)
    except RuleError as err:
        assert err.text == text or err.text is None
        assert err.column is None or 0 <= err.column <= len(text)
        str(err)
        return
    try:
        r.select(PTABLE)
    except RuleError as err:
        assert err.path in PTABLE.paths


@pytest.mark.parametrize("pattern", ["*", "**", "", "a", "*a", "a*", "*a*", "**a**", "*a*b*", "a*b", "*.b?", "[ab]*"])
def test_glob_fast_paths_match_fnmatch(pattern):
    paths = ["a", "ab", "ba", "bab", "", "embed.weight", "x.embed", "*", "a*b", "a.b1"]
    table = ParameterTable([(p, mx.zeros((1,))) for p in paths])
    expected = [fnmatch.fnmatchcase(p, pattern) for p in paths]
    assert by_glob(pattern).select(table).tolist() == expected
    assert [by_glob(pattern)(p, a) for p, a in zip(table.paths, table.arrays)] == expected
