# Tests the private modules' own units: multiopt_lab._src.partition.assignment,
#   multiopt_lab._src.render.params, multiopt_lab._src.render.search,
#   multiopt_lab._src.render.tree_model.
"""A keystroke in the rule editor computes each thing once, and only what the folded tree shows.

Issue 24: with 10,000 parameter arrays a keystroke took 263 ms, 80-90% of it
drawing a tree whose folded HTML is 20 KB. These tests count the work (never
time it; the figures are in benchmarks/bench_render.py): what one
assignment gives is computed once however many surfaces draw it, what
depends only on the parameters (the tree's nesting, a search) is not redone
when only the rules change, and a folded tree builds the rows it shows.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim
import pytest

import multiopt_lab._src.partition.assignment as assignment_module
import multiopt_lab._src.render.params as params_module
import multiopt_lab._src.render.search as search_module
import multiopt_lab._src.render.tree_model as tree_model
from multiopt_lab import MultiOptimizer, RuleEditorWidget, assign, render_html, render_text
from multiopt_lab._src.render.tree_model import build_tree

pytestmark = pytest.mark.usefixtures("recorded_comm")


def stacked_model(blocks: int = 300) -> dict:
    return {"layers": [{"attn": {"q": {"weight": mx.zeros((2, 2))}, "k": {"weight": mx.zeros((2, 2))}},
                        "experts": [{"w": mx.zeros((2, 2))} for _ in range(8)],
                        "norm": {"weight": mx.zeros((2,))}} for _ in range(blocks)],
            "head": {"weight": mx.zeros((2, 2))}}


class Counted:
    """Wraps ``module.name`` to count its calls."""

    def __init__(self, monkeypatch, module, name):
        self.calls = 0
        original = getattr(module, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)


def test_a_folded_tree_builds_the_rows_it_shows_not_every_parameter(monkeypatch):
    built = Counted(monkeypatch, params_module, "ParamInfo")
    assignment = assign(stacked_model(), ['ndim == 2 and not glob("layers.7.experts.3.*")'])
    tree = build_tree(assignment)
    layers = tree.root.children[0]
    assert [c.name for c in layers.children] == ["[0..6]", "7", "[8..299]"]
    # 3 shown blocks of 11 parameters and the head, out of 3,301.
    assert built.calls <= 3 * 11 + 1


def test_one_keystroke_diagnoses_its_assignment_once_and_searches_nothing_again(monkeypatch):
    model = stacked_model(20)
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
    editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
    editor.tree.search_box.value = "attn"
    editor.tree.flush()
    assert editor.tree.search.paths[:1] == ("layers.0.attn.q.weight",)
    diagnosed = Counted(monkeypatch, assignment_module, "diagnose")
    searched = Counted(monkeypatch, search_module.fnmatch, "fnmatchcase")  # the glob "attn"
    editor.inputs["muon"].value = 'ndim == 2 and not glob("*.k.*")'
    assert 'data-path="layers.0.attn.k.weight" data-group="adamw"' in editor.tree.view.html
    assert diagnosed.calls == 1  # the tree, its legend, the editor's warnings: one diagnosis
    assert searched.calls == 0  # the search reads paths: the same table, the same answer
    editor.close()


def test_one_redraw_builds_its_tree_once_for_the_html_and_the_search_status(monkeypatch):
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
    editor = RuleEditorWidget(stacked_model(20), optimizer, debounce_seconds=0)
    editor.tree.search_box.value = "layers.3"
    editor.tree.flush()
    roots = Counted(monkeypatch, tree_model, "ParameterTree")
    editor.inputs["muon"].value = "ndim >= 2"
    assert roots.calls == 1
    assert "(11 shown" not in editor.tree.search_status.value  # layers.3 is unfolded: all shown
    editor.close()


def test_each_form_of_one_assignment_reuses_its_tree_and_flags():
    assignment = assign(stacked_model(10), ["ndim == 2", "ndim >= 1"], ["muon", "sgd", "adamw"])
    first = build_tree(assignment, highlight={"layers.2.norm.weight"})
    assert build_tree(assignment, highlight=frozenset({"layers.2.norm.weight"})) is first
    assert build_tree(assignment) is not first
    flags = params_module.flagged_params(assignment)
    assert flags["head.weight"].also_matched == ("sgd",)
    render_text(assignment)
    render_html(assignment)
    assert params_module.flagged_params(assignment) is flags


def test_notes_on_every_norm_are_not_turned_into_rows_of_flags():
    # AdamW decays 300 norm scales: one note, no flag. Flags are worked out for the
    # flagged few (the tree folds by them); a note rides along in a shown row's details.
    model = stacked_model()
    assignment = assign(model, ["ndim == 2"], ["sgd", "adamw"],
                        optimizers=[optim.SGD(0.1), optim.AdamW(1e-3, weight_decay=0.1)])
    notes = [f for f in assignment.diagnostics.findings if f.kind == "weight_decay"]
    assert len(notes) == 1 and len(notes[0].paths) == 300
    assert params_module.flagged_params(assignment) == {}
    info = params_module.param_infos(assignment)["layers.0.norm.weight"]
    assert info.flags == () and info.findings == tuple(notes)
