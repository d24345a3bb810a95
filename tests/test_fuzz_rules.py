# Tests the private module multiopt_lab._src.rules.text's own unit.
"""Fuzzing the rule language: any text parses into a rule or raises RuleError, and runs no code.

Hostile fragments (imports, dunder chains, format-string tricks, lambdas,
comprehensions, huge numbers, deep brackets, megabytes of text) and random
text go through ``rule()``; what parses is evaluated on parameters of every
rank and several dtypes. Only ``RuleError`` may escape, every result is a
``bool``, a sentinel that any executed code would trip never fires, and each
parse + evaluation stays within a time and memory bound.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
import types

import mlx.core as mx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from multiopt_lab import ParameterTable, RuleError, rule
from multiopt_lab._src.rules.text import MAX_LENGTH

# Generous for a loaded 2-core CI machine; a real hang or blow-up is orders larger.
SECONDS_PER_RULE = 2.0
PEAK_BYTES_PER_RULE = 64 * 2**20

PARAMETERS = [
    ("w", mx.zeros(())),
    ("layers.0.attn.q.weight", mx.zeros((4, 4))),
    ("layers.0.attn.q.bias", mx.zeros((4,))),
    ("embed.weight", mx.zeros((7, 4), dtype=mx.float16)),
    ("conv.weight", mx.zeros((2, 3, 3, 1), dtype=mx.bfloat16)),
    ("odd path.with 'quotes\".and\\slashes", mx.zeros((0,), dtype=mx.int32)),
    ("ünïcode.权重", mx.zeros((1, 1, 1), dtype=mx.uint8)),
    ("", mx.zeros((3,), dtype=mx.bool_)),
]
TABLE = ParameterTable(PARAMETERS)

SENTINEL_MODULE = "_multiopt_lab_fuzz_sentinel"


@pytest.fixture(scope="module", autouse=True)
def sentinel():
    """A module any executed rule text could import and call; it must never fire."""
    module = types.ModuleType(SENTINEL_MODULE)
    module.fired = []
    module.fire = lambda *args: module.fired.append(args) or True
    sys.modules[SENTINEL_MODULE] = module
    yield module
    del sys.modules[SENTINEL_MODULE]
    assert module.fired == [], f"rule text ran code: {module.fired}"


S = SENTINEL_MODULE
HOSTILE = [
    f"__import__('{S}').fire()",
    f"__import__('{S}').fire() or ndim == 2",
    f"ndim == 2 and __import__('{S}').fire()",
    "__import__('os').system('touch /tmp/multiopt_lab_pwned')",
    "().__class__.__bases__[0].__subclasses__()",
    "path.__class__.__mro__[-1].__subclasses__()",
    "glob.__globals__['__builtins__']['__import__']('os')",
    "regex.__code__",
    "glob('x').__class__",
    "getattr(path, '__class__')",
    "getattr(path, 'startswith')('a')",
    "path.startswith('layers')",
    "path.format(path)",
    "'{0.__class__}'.format(path)",
    "'{0.__class__.__init__.__globals__}'.format(path) == path",
    "f'{path.__class__}' == path",
    "f\"{__import__('os')}\" == path",
    "'%s' % path == 'x'",
    "lambda: 0",
    "(lambda: 0)() == 0",
    "[x for x in ()]",
    "{x for x in (1,)} == 1",
    "any(x for x in shape)",
    "(y := ndim) == 2",
    "open('/etc/passwd')",
    "open('/tmp/multiopt_lab_pwned', 'w')",
    "eval('1') == 1",
    "exec('x = 1')",
    "compile('1', 'f', 'eval')",
    "globals()",
    "locals()['path']",
    "vars()",
    "breakpoint()",
    "help()",
    "input()",
    "print(path)",
    "__builtins__",
    "__builtins__['eval']('1')",
    "__class__",
    "__import__",
    "ndim.__class__",
    "shape.__len__() == 2",
    "shape.count(1) == 1",
    "dtype.upper() == 'FLOAT32'",
    "name.__doc__",
    "9**9**9",
    "9**9**9 == 1",
    "size > 9**9**9",
    "size > 10**100000",
    "ndim == " + "9" * 1999,
    "size < 1e308 * 10",
    "size > 1e999",
    "size > -1e999",
    "ndim == 1" + " and ndim == 1" * 140,
    "not " * 300 + "ndim == 1",
    "-" * 500 + "1 == ndim",
    "(" * 40 + "ndim == 1" + ")" * 40,
    "(" * 10000 + ")" * 10000,
    "[" * 100000,
    "(" * 1000,
    ")" * 1000,
    "ndim == 2 " + "or ndim == 3 " * 100,
    "shape[9999999999999999999999] == 1",
    "shape[-9999999999999999999999] == 1",
    "path[::0] == 'x'",
    "path[:: -1] == 'x'",
    "shape[::0] == (1,)",
    "shape[1:99999999999999999999999] == (1,)",
    "(1, 2)[3] == 1",
    "'abc'[5] == 'a'",
    "shape < (1, 'a')",
    "shape == (1, (2, 3))",
    "path in ('a', 1)",
    "'a' in shape",
    "shape[0] in path",
    "regex('(a+)+$')",
    "regex('(a|a)*b')",
    "regex('.*.*.*.*.*x')",
    "regex('(x)\\\\1')",
    "regex('[')",
    "regex('a{99999999999}')",
    "regex('(?P<n>a)(?P=n)')",
    "regex('(' * 200 + 'a' + ')' * 200)",
    "regex('" + "(" * 300 + "a" + ")" * 300 + "')",
    "regex('a' * 300)",
    "glob('[' * 200)",
    "glob('*' * 256)",
    "glob('" + "*a" * 120 + "')",
    "glob(path)",
    "glob(*('x',))",
    "glob(pattern='x')",
    "glob('a', 'b')",
    "glob()",
    "regex(b'x')",
    "glob(u'x')",
    "ndim == b'2'",
    "ndim == 2j",
    "ndim == None",
    "ndim == ...",
    "ndim is 2",
    "ndim is not None",
    "~ndim",
    "ndim @ 2",
    "ndim if ndim else 1",
    "await ndim",
    "yield ndim",
    "*shape",
    "ndim = 2",
    "ndim == 2; import os",
    "import os",
    "ndim == 2 # comment",
    "ndim == 2\n__import__('os')",
    "ndim == 2\\\n or True",
    "'\\N{LATIN SMALL LETTER A}' in path",
    "'\\x00' in path",
    "ndim == 2\x00",
    "\ufeffndim == 2",
    "ndim\u00a0== 2",
    "ｎｄｉｍ == 2",
    "ℕ == 2",
    "ndim == ２",
    "\"" + "a" * 300 + "\" in path",
    "'''a''' in path",
    "r'\\' in path",
    "'a' 'b' in path",
    "True",
    "False",
    "1",
    "''",
    "()",
    "(ndim == 2,)",
    "",
    "   \n\t  ",
    "ndim == 2" + " " * (MAX_LENGTH - 9),
    "ndim == 2" + " " * (MAX_LENGTH - 8),
    "a" * (10 * 2**20),
    "(" * (10 * 2**20),
    "'" + "\\" * (MAX_LENGTH - 2) + "'",
]


def _check_one(text: str) -> None:
    """Parse and evaluate ``text``: RuleError only, bool results, bounded time."""
    start = time.perf_counter()
    try:
        r = rule(text)
    except RuleError as err:
        assert err.text in (text, None)
        assert err.column is None or 0 <= err.column <= len(text)
        assert err.path is None
        str(err)  # the caret rendering must not fail either
    else:
        for path, array in PARAMETERS:
            try:
                result = r(path, array)
            except RuleError as err:
                assert err.path == path, f"{text!r} failed on {path!r} but names {err.path!r}"
            else:
                assert type(result) is bool, f"{text!r} gave {result!r} on {path!r}"
        try:
            mask = r.select(TABLE)
        except RuleError as err:
            assert err.path in TABLE.paths
        else:
            assert mask.dtype == bool and len(mask) == len(TABLE)
            assert mask.tolist() == [r(p, a) for p, a in PARAMETERS]
    elapsed = time.perf_counter() - start
    assert elapsed < SECONDS_PER_RULE, f"{text[:80]!r}... took {elapsed:.2f} s"


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:40]))
def test_hostile_text_raises_rule_error_or_is_a_plain_rule(text, sentinel, tmp_path):
    _check_one(text)
    assert sentinel.fired == []


def test_no_hostile_text_touches_the_file_system():
    import os

    for text in HOSTILE:
        _check_one(text)
    assert not os.path.exists("/tmp/multiopt_lab_pwned")


def test_code_fragments_are_refused_with_their_column():
    for text, column in [("ndim == 2 and __import__('os')", 14),
                         ("ndim == 2 or path.startswith('a')", 13),
                         ("f'{path}' == 'x'", 0), ("ndim == (lambda: 2)()", 9)]:
        with pytest.raises(RuleError) as info:
            rule(text)
        assert info.value.column == column, (text, str(info.value))


def test_memory_stays_bounded_on_the_largest_inputs():
    worst = [t for t in HOSTILE if len(t) >= 1000] + ["(" * 29 + "ndim == 1" + ")" * 29]
    for text in worst:
        tracemalloc.start()
        try:
            _check_one(text)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # A 10 MB input is refused on its length: nothing near its size is allocated.
        assert peak < PEAK_BYTES_PER_RULE, f"{text[:40]!r}: peak {peak / 2**20:.1f} MiB"


FRAGMENTS = st.sampled_from([
    "ndim", "shape", "size", "dtype", "path", "name", "glob", "regex", "__import__", "__class__",
    "getattr", "open", "eval", "lambda", "for", "in", "not", "and", "or", "if", "else", "is",
    "(", ")", "[", "]", "{", "}", ",", ":", ".", "==", "!=", "<", ">=", "**", "+", "-", "*", "%",
    "~", "@", ":=", "'", '"', "f'", "r'", "b'", "\\", "0", "2", "-1", "1e999", "9" * 30, "0x1F",
    "1_000", "'*embed*'", "'(a+)+'", "'{0.__class__}'", "'%s'", "#", "\n", " ", "\t", "\x00",
    "é", "权", "\ufeff", "True", "False", "None", "...", ";", "=", "`", "$",
])
TOKEN_SOUP = st.lists(FRAGMENTS, max_size=40).map(" ".join)
RAW_SOUP = st.lists(FRAGMENTS, max_size=40).map("".join)
ANY_TEXT = st.text(max_size=300)


@settings(max_examples=400, deadline=None, derandomize=True, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(TOKEN_SOUP, RAW_SOUP, ANY_TEXT))
@example("ndim == 2 and not glob('*embed*')")
@example("shape[1] > 8")
def test_any_text_parses_into_a_bool_rule_or_raises_rule_error(text):
    _check_one(text)
    assert sys.modules[SENTINEL_MODULE].fired == []


VALID_ATOMS = st.sampled_from([
    "ndim == 2", "ndim >= 1", "size > 10", "shape[0] == 4", "shape[-1] > 3", "dtype == 'float16'",
    "name == 'bias'", "'embed' in path", "glob('*.weight')", "regex('layers\\.[0-9]+')",
    "path[:6] == 'layers'", "shape == (4, 4)", "4 in shape", "ndim in (1, 3)", "True",
])
VALID = st.recursive(VALID_ATOMS, lambda inner: st.one_of(
    inner.map(lambda t: f"not ({t})"),
    st.tuples(inner, st.sampled_from([" and ", " or "]), inner).map(lambda t: f"({t[0]}){t[1]}({t[2]})"),
), max_leaves=12)


@settings(max_examples=150, deadline=None, derandomize=True, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(VALID)
def test_well_formed_rules_give_bools_or_name_the_failing_parameter(text):
    # shape[0] on a 0-d parameter fails: RuleError naming that path, nothing else.
    _check_one(text)
