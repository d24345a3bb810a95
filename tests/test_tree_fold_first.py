# Tests the private modules' own units: multiopt_lab._src.render.html,
#   multiopt_lab._src.render.params, multiopt_lab._src.render.search, multiopt_lab._src.render.text,
#   multiopt_lab._src.render.tree_model.
"""Folding before drawing gives the tree the old builder gave, node for node.

``build_tree`` now builds only what the folded view shows (issue 24): the
nesting is computed once per parameter structure and runs of blocks are
compared as arrays. ``tests/old_tree_builder.py`` is the builder of 61d2966,
which nested every parameter and folded afterwards; on varied models (the
mlx-lm architectures included), rules (overlaps, near misses, a block
assigned differently), search matches, unfolded modules and selections, the
trees, their text and their HTML must be the same.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multiopt_lab import assign
from multiopt_lab._src.render.html import tree_html
from multiopt_lab._src.render.params import group_totals, param_infos
from multiopt_lab._src.render.search import search_paths, shown_matches
from multiopt_lab._src.render.text import tree_text
from multiopt_lab._src.render.tree_model import build_tree
from multiopt_lab.examples import MLP, SmallCNN, TinyGPT, TinyMoE

from mlx_lm_models import ALL, build
from old_tree_builder import old_build_tree, old_param_infos

RULE_SETS = [
    ['ndim == 2 and not glob("*embed*")'],
    # overlaps: the second rule matches what the first took
    ['ndim == 2 and not glob("*embed*")', "ndim >= 1"],
    # near misses: 3-D stacks left to the fallback beside 2-D matrices
    ["ndim == 2"],
    # one block assigned differently from its siblings
    ['ndim == 2 and not glob("*.1.*")', 'glob("*norm*")'],
    [],
]

QUERIES = ["", "attn", "*.bias", "ndim == 1", "weight", "layers.1"]


def check_same(assignment, *, fold=True, unfold=(), highlight=(), root_name="model"):
    options = dict(root_name=root_name, fold=fold, unfold=unfold, highlight=highlight)
    new, old = build_tree(assignment, **options), old_build_tree(assignment, **options)
    assert new == old
    assert tree_text(new) == tree_text(old)
    assert shown_matches(new) == shown_matches(old)
    searching = bool(highlight)
    for selected in (None, next(iter(sorted(highlight)), None), assignment.table.paths[-1]
                     if len(assignment.table) else None):
        for interactive in (False, True):
            html = dict(selected=selected, searching=searching, interactive=interactive)
            assert tree_html(new, **html) == tree_html(old, **html)
    assert tree_html(new, open_depth=5) == tree_html(old, open_depth=5)
    return new


def check_states(assignment):
    check_same(assignment)
    check_same(assignment, fold=False)
    layered = [p.split(".")[0] for p in assignment.table.paths if ".0." in p]
    check_same(assignment, unfold=set(layered[:1]) | {""})
    for query in QUERIES[1:]:
        found = search_paths(assignment, query)
        check_same(assignment, highlight=frozenset(found.paths))
        check_same(assignment, highlight=frozenset(found.paths), unfold=set(layered[:1]))
    infos, old = param_infos(assignment), old_param_infos(assignment)
    assert dict(infos) == old and list(infos) == list(old)
    params = [0] * len(assignment.group_labels)
    elements = [0] * len(assignment.group_labels)
    for info in old.values():
        params[info.group] += 1
        elements[info.group] += info.size
    assert group_totals(assignment) == (params, elements)


@pytest.mark.parametrize("model", [MLP(4, [8, 8], 2), TinyGPT(16, dims=8, layers=4, heads=2),
                                   TinyMoE(16, dims=8, layers=3, experts=4), SmallCNN()],
                         ids=["mlp", "gpt", "moe", "cnn"])
@pytest.mark.parametrize("rules", RULE_SETS, ids=["matrices", "overlaps", "near-misses", "one-block", "none"])
def test_the_examples_fold_as_before(model, rules):
    labels = [f"g{i}" for i in range(len(rules))] + ["rest"]
    check_states(assign(model, rules, labels))


@pytest.mark.parametrize("name", ALL)
def test_mlx_lm_models_fold_as_before(name):
    model = build(name)
    for rules in (RULE_SETS[0], RULE_SETS[3], ['module == "SwitchLinear" or glob("*attn*")', "ndim == 1"]):
        labels = [f"g{i}" for i in range(len(rules))] + ["rest"]
        check_states(assign(model, rules, labels))


def test_a_large_folded_tree_builds_only_what_it_shows():
    blocks = [{"attn": {"q": {"weight": mx.zeros((2, 2))}, "k": {"weight": mx.zeros((2, 2))}},
               "experts": [{"w": mx.zeros((2, 2))} for _ in range(8)], "norm": {"weight": mx.zeros((2,))}}
              for _ in range(300)]
    assignment = assign({"layers": blocks}, ['ndim == 2 and not glob("layers.7.experts.3.*")'])
    check_same(assignment)
    assert len(param_infos(assignment)._built) < 40  # about 3 blocks' worth, not 3,600 parameters


def test_a_repeated_path_and_a_path_inside_a_parameter():
    # Dotted keys can give one path twice; the last row is shown, as before.
    tree = {"a": {"b": mx.zeros((2,))}, "a.b": mx.zeros((3, 3)), "c": mx.zeros((1,))}
    check_states(assign(tree, ["ndim == 2"]))
    # A module path overwritten by a later parameter of that path: as before.
    tree = {"x.y": mx.zeros((2,)), "x": mx.zeros((2,))}
    check_same(assign(tree, []))
    with pytest.raises(ValueError, match="nests under 'x'"):
        build_tree(assign({"x": mx.zeros((2,)), "x.y": mx.zeros((2,))}, []))


def test_digit_named_parameters_and_non_consecutive_blocks():
    tree = {"experts": {"1": {"w": mx.zeros((2,))}, "3": {"w": mx.zeros((2,))}, "4": mx.zeros((2,)),
                        "5": {"w": mx.zeros((2,))}, "6": {"w": mx.zeros((2,))}},
            "é": [{"w": mx.zeros((2, 2))}, {"w": mx.zeros((2, 2))}]}
    check_states(assign(tree, ["ndim == 2"]))


_shapes = st.sampled_from([(2,), (2, 2), (3, 2), (2, 2, 2)])


@st.composite
def trees(draw):
    """Nested blocks of a few shapes: runs that share a structure, some that do not."""
    def block(depth):
        keys = draw(st.lists(st.sampled_from(["w", "b", "norm", "q", "0", "1"]), min_size=1, max_size=3,
                             unique=True))
        out = {}
        for key in keys:
            if depth < 2 and draw(st.booleans()):
                count = draw(st.integers(1, 4))
                inner = block(depth + 1)
                out[key] = [inner if draw(st.integers(0, 3)) else block(depth + 1) for _ in range(count)]
            else:
                out[key] = mx.zeros(draw(_shapes))
        return out
    return {"layers": [block(0) for _ in range(draw(st.integers(1, 5)))], "head": mx.zeros((2, 2))}


@settings(max_examples=60, deadline=None)
@given(trees(), st.lists(st.sampled_from(["ndim == 2", 'glob("*.1.*")', "ndim == 1", 'glob("*b*")',
                                          'regex(r"\\.0\\.")']), max_size=3),
       st.integers(0, 5), st.booleans())
def test_random_trees_fold_as_before(tree, rules, query, fold):
    assignment = assign(tree, rules)
    highlight = frozenset(search_paths(assignment, QUERIES[query]).paths)
    check_same(assignment, fold=fold, highlight=highlight)
    check_same(assignment, unfold={"layers"}, highlight=highlight)


def test_module_trees_keep_their_module_classes():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.LayerNorm(2))
    assignment = assign(model, ['module == "Linear"'])
    check_states(assignment)
    tree = build_tree(assignment)
    assert tree.root.children[0].children[0].block.children[0].info.modules == ("Sequential", "Linear")
