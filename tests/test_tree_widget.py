# Tests the private modules' own units: multiopt_lab._src.live.debounce, multiopt_lab._src.palette.
"""ParameterTreeWidget without a browser: a dummy comm records what the kernel sends."""

from __future__ import annotations

import asyncio
import re

import mlx.nn as nn
import mlx.optimizers as optim
import pytest

from multiopt_lab import MultiOptimizer, ParameterTreeWidget, assign
from multiopt_lab._src.live.debounce import Debouncer
from multiopt_lab._src.palette import group_colour
from multiopt_lab.examples import MLP, TinyGPT
from widget_comm import sent


pytestmark = pytest.mark.usefixtures("recorded_comm")


def row(html: str, path: str) -> tuple[str, str]:
    match = re.search(rf'data-path="{re.escape(path)}" data-group="([^"]+)" style="--mol-c:(#[0-9A-F]+)"', html)
    assert match, f"no row for {path}"
    return match.groups()


@pytest.fixture
def setup():
    model = TinyGPT(16, dims=8, layers=3, heads=2, max_length=8)
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ['ndim == 2 and not glob("*embed*")'])
    return model, optimizer


def test_shows_the_coloured_tree_with_legend(setup):
    model, optimizer = setup
    tree = ParameterTreeWidget(model, optimizer, search_debounce=0)
    html = tree.view.html
    assert html.startswith('<div class="mol-root mol-interactive">')
    assert row(html, "embed.weight") == ("adamw", group_colour(1))
    assert "Muon(lr=0.02" in html and 'data-fold="layers" data-fold-count="3"' in html
    assert tree.text(legend=False).splitlines()[0].startswith("TinyGPT ")
    assert {"mol-tree-widget"} <= set(tree._dom_classes) and "mol-tree" in tree.view._dom_classes


def test_click_on_a_parameter_shows_its_details(setup):
    tree = ParameterTreeWidget(*setup, search_debounce=0)
    tree.view.set_state({"selected_path": "layers.0.mlp.layers.0.bias"})  # as the browser's click
    details = sent(tree.details, "value")[-1]
    assert 'data-path="layers.0.mlp.layers.0.bias" data-group="adamw"' in details
    for text in ("[32]", "float32", "(fallback)", "AdamW(lr=0.001", "no other rule",
                 '<th>module</th><td>Linear</td>', "<td>TinyGPT &gt; Block &gt; Sequential</td>"):
        assert text in details
    tree.view.set_state({"selected_path": ""})
    assert "Click a parameter" in sent(tree.details, "value")[-1]


def test_search_by_glob_and_by_rule_highlights_matches(setup):
    tree = ParameterTreeWidget(*setup, search_debounce=0)
    tree.search_box.set_state({"value": "norm"})
    html = sent(tree.view, "html")[-1]
    assert 'class="mol-tree mol-searching"' in html
    # Three identical blocks match alike, so they stay folded: 4 rows + norm's 2.
    assert len(tree.search.paths) == 14 and html.count(' mol-match"') == 6
    assert "glob *norm*: 14 matches (6 shown; unfold for the rest)" in sent(tree.search_status, "value")[-1]
    tree.view.set_state({"unfold": ["layers"]})  # every match now has its row
    assert "glob *norm*: 14 matches</pre>" in sent(tree.search_status, "value")[-1]
    tree.view.set_state({"unfold": []})
    tree.search_box.set_state({"value": "ndim == 2 and size > 100"})
    assert tree.search.kind == "rule" and "embed.weight" in tree.search.paths
    tree.search_box.set_state({"value": "ndim == == 2"})
    status = sent(tree.search_status, "value")[-1]
    assert 'class="mol-error"' in status and "^" in status
    tree.search_box.set_state({"value": ""})
    assert " mol-match\"" not in sent(tree.view, "html")[-1]


def test_unfold_from_the_browser_and_the_fold_toggle(setup):
    tree = ParameterTreeWidget(*setup, search_debounce=0)
    tree.view.set_state({"unfold": ["layers"]})  # the "unfold" button in the fold row
    html = sent(tree.view, "html")[-1]
    assert "data-fold=" not in html and 'data-path="layers.2.attn.q.weight"' in html
    tree.fold_toggle.set_state({"value": True})
    tree.fold_toggle.set_state({"value": False})
    assert "data-fold=" not in tree.view.html
    tree.fold_toggle.set_state({"value": True})
    assert tree.view.unfold == [] and 'data-fold="layers"' in tree.view.html


def test_redraws_when_the_assignment_changes(setup):
    model, optimizer = setup
    tree = ParameterTreeWidget(model, optimizer, search_debounce=0)
    tree.view.set_state({"selected_path": "embed.weight"})
    optimizer.repartition(["ndim == 2"], model)
    tree.refresh()
    assert row(sent(tree.view, "html")[-1], "embed.weight") == ("muon", group_colour(0))
    assert 'data-group="muon"' in sent(tree.details, "value")[-1]


def test_accepts_an_assignment_an_mlx_multioptimizer_and_one_optimizer():
    model = MLP(4, 4, 2)
    by_assignment = ParameterTreeWidget(model, assign(model, ["ndim == 1"], ["sgd", "adam"]))
    assert row(by_assignment.view.html, "head.bias") == ("sgd", group_colour(0))
    mlx_multi = optim.MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], [lambda path, a: a.ndim == 2])
    assert row(ParameterTreeWidget(model, mlx_multi).view.html, "head.weight")[0] == "group_0"
    single = ParameterTreeWidget(model.parameters(), optim.Lion(1e-4))
    assert row(single.view.html, "head.weight")[0] == "lion" and "Lion(lr=0.0001" in single.view.html
    with pytest.raises(TypeError, match="expected an Assignment, a MultiOptimizer"):
        ParameterTreeWidget(model, "adam")


def test_search_is_debounced_until_typing_pauses(setup):
    async def scenario():
        tree = ParameterTreeWidget(*setup, search_debounce=0.05)
        tree.search_box.set_state({"value": "att"})
        tree.search_box.set_state({"value": "attn"})
        assert tree.search.kind == "none"  # nothing ran while typing
        await asyncio.sleep(0.15)
        return tree

    tree = asyncio.run(scenario())
    assert tree.search.query == "attn" and len(tree.search.paths) == 12


def test_debouncer_flush_and_cancel():
    calls = []
    debounced = Debouncer(10, lambda: calls.append(1))

    async def scenario():
        debounced()
        debounced()
        assert debounced.pending and calls == []
        debounced.flush()
        debounced()
        debounced.cancel()

    asyncio.run(scenario())
    assert calls == [1] and not debounced.pending


def test_a_model_with_frozen_parameters_shows_only_trainable_ones():
    model = MLP(4, 4, 2)
    model.head.freeze()
    tree = ParameterTreeWidget(model, MultiOptimizer([optim.SGD(0.1)]))
    assert 'data-path="head.weight"' not in tree.view.html and 'data-path="layers.0.weight"' in tree.view.html


def test_watcher_redraws_after_a_repartition_elsewhere(setup):
    model, optimizer = setup
    tree = ParameterTreeWidget(model, optimizer)
    assert not tree.watcher.check()
    optimizer.repartition(["ndim == 2"], model)
    assert tree.watcher.check()
    assert row(sent(tree.view, "html")[-1], "embed.weight") == ("muon", group_colour(0))


def test_watcher_polls_on_the_running_loop_and_stops_when_closed(setup):
    model, optimizer = setup

    async def scenario():
        tree = ParameterTreeWidget(model, optimizer, watch_seconds=0.02)
        optimizer.repartition(["ndim == 2"], model)
        await asyncio.sleep(0.1)
        redrawn = row(tree.view.html, "embed.weight")[0]
        tree.close()
        optimizer.repartition(["ndim == 1"], model)
        await asyncio.sleep(0.1)
        return redrawn, row(tree.view.html, "embed.weight")[0]

    assert asyncio.run(scenario()) == ("muon", "muon")


def test_refresh_rereads_a_model_that_changed():
    model = MLP(4, [4], 2)
    tree = ParameterTreeWidget(model, MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"]))
    model.extra = nn.Linear(2, 2)
    tree.refresh()
    assert 'data-path="extra.weight" data-group="sgd"' in tree.view.html


def test_refresh_follows_a_change_in_the_number_of_groups(setup):
    model, optimizer = setup
    tree = ParameterTreeWidget(model, optimizer)
    optimizer.repartition(["ndim == 2", "ndim == 1"], model, labels=["muon", "sgd", "adamw"],
                          optimizers=[optim.Muon(0.02), optim.SGD(0.1), optim.AdamW(1e-3)])
    tree.watcher.check()
    assert row(tree.view.html, "norm.bias")[0] == "sgd" and "SGD(lr=0.1)" in tree.view.html
