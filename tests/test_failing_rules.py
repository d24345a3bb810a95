# Tests the private modules' own units: multiopt_lab._src.partition.rule_failures,
#   multiopt_lab._src.rules.cache.
"""A rule that starts failing never locks the user in.

``shape[1] == 8`` works while the biases are frozen; unfreezing them makes
every update fail (as MLX's MultiOptimizer would). The rule must still be
replaceable: ``repartition`` and ``request_repartition`` to a rule that works
succeed, moving the state of every parameter whose old group is known and
saying what happened to the rest; the rule editor opens, with the error
under the failing rule.
"""

from __future__ import annotations

import warnings

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest

import multiopt_lab as mol
from multiopt_lab._src.rules.cache import clear_selection_cache  # private: the cache this test bypasses
from multiopt_lab._src.partition.rule_failures import assign_despite_failures


def loss(model, x):
    return model(x).sum()


def step(model, optimizer):
    grads = nn.value_and_grad(model, loss)(model, mx.ones((3, 4)))[1]
    optimizer.update(model, grads)
    mx.eval(model.parameters(), optimizer.state)


def locked_in():
    """A model whose biases were frozen while ``shape[1] == 8`` trained; now unfrozen."""
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    for layer in model.layers:
        layer.freeze(keys=["bias"])
    optimizer = mol.MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)],
                                   ["shape[1] == 8"], labels=["sgd", "adam"])
    step(model, optimizer)
    step(model, optimizer)
    model.unfreeze()
    return model, optimizer


def test_the_update_fails_as_it_should():
    model, optimizer = locked_in()
    with pytest.raises(mol.RuleError, match="index 1 is out of range"):
        step(model, optimizer)


def test_repartition_to_a_working_rule_succeeds_and_keeps_known_state():
    model, optimizer = locked_in()
    kept_sgd = optimizer.state["states"][0]["layers"][1]["weight"]   # (2, 8): sgd, stays
    kept_adam = optimizer.state["states"][1]["layers"][0]["weight"]  # (8, 4): adam, stays
    with pytest.warns(RuntimeWarning, match=r"(?s)the rule of 'sgd' fails on 2 parameters .*"
                                            r"no group held state for them"):
        moves = optimizer.repartition(["ndim == 2 and shape[1] == 8"], model)
    assert sorted(moves) == [("layers.0.bias", None, "adam"), ("layers.1.bias", None, "adam")]
    assert optimizer.state["states"][0]["layers"][1]["weight"] is kept_sgd
    assert optimizer.state["states"][1]["layers"][0]["weight"] is kept_adam
    step(model, optimizer)  # trains again
    assert int(optimizer.step.item()) == 3


def test_request_repartition_applies_at_the_next_update():
    model, optimizer = locked_in()
    pending = optimizer.request_repartition(["ndim == 2 and shape[1] == 8"])
    with pytest.warns(RuntimeWarning, match="fails on 2 parameters"):
        step(model, optimizer)
    assert pending.error is None and len(pending.moves) == 2


class Switch:
    """A callable rule that starts raising when told (a rule reading an outside setting)."""

    structural = True

    def __init__(self):
        self.broken = False

    def __call__(self, path, array):
        if self.broken:
            raise KeyError("setting gone")
        return array.ndim == 2


def test_state_is_attributed_from_the_last_routing_and_moves_as_usual():
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    rule = Switch()
    sgd, adam = optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)
    optimizer = mol.MultiOptimizer([sgd, adam], [rule], labels=["sgd", "adam"])
    step(model, optimizer)
    rule.broken = True  # now it fails on every parameter
    # A structural rule's selections are cached per parameter table; the routing
    # just made one for this very table, so forget it as a new table would.
    clear_selection_cache()
    weight_state = optimizer.state["states"][0]["layers"][0]["weight"]
    bias_state = optimizer.state["states"][1]["layers"][0]["bias"]
    with pytest.warns(RuntimeWarning, match="routed to group 'sgd' at the last update"):
        moves = optimizer.repartition(["ndim == 2 and shape[0] == 8", "ndim == 1"], model,
                                      labels=["sgd", "adam", "sgd_2"],
                                      optimizers=[sgd, adam, optim.SGD(0.1, momentum=0.9)])
    # layers.0.weight (8, 4) and the biases stay, with their very state dicts
    assert optimizer.state["states"][0]["layers"][0]["weight"] is weight_state
    assert optimizer.state["states"][1]["layers"][0]["bias"] is bias_state
    # layers.1.weight (2, 8) moves from sgd to the new group, where it starts fresh
    assert moves == [("layers.1.weight", "sgd", "sgd_2")]
    assert float(mx.abs(optimizer.state["states"][2]["layers"][1]["weight"]["v"]).sum()) == 0


def test_state_held_in_one_group_is_attributed_to_it():
    model = nn.Sequential(nn.Linear(4, 8))
    trained = mol.MultiOptimizer([optim.Adam(0.01), optim.Adam(0.02)], ["ndim == 2"],
                                 labels=["a", "b"])
    step(model, trained)
    rule = Switch()
    rule.broken = True
    optimizer = mol.MultiOptimizer([optim.Adam(0.01), optim.Adam(0.02)], [rule], labels=["a", "b"])
    optimizer.state = trained.state  # as from a checkpoint: no routing yet
    weight_state = optimizer.state["states"][0]["layers"][0]["weight"]
    with pytest.warns(RuntimeWarning, match="state found in group 'a' only"):
        moves = optimizer.repartition(["ndim == 2"], model)
    assert moves == []
    assert optimizer.state["states"][0]["layers"][0]["weight"] is weight_state


def test_state_held_in_several_groups_is_dropped_and_said():
    model = nn.Sequential(nn.Linear(4, 8))
    trained = mol.MultiOptimizer([optim.Adam(0.01), optim.Adam(0.02)], ["ndim == 2"],
                                 labels=["a", "b"])
    step(model, trained)
    states = trained.state["states"]
    # A state set by hand (MLX's setter takes any tree) holds the weight in both groups.
    states[1]["layers"][0]["weight"] = dict(states[0]["layers"][0]["weight"])
    rule = Switch()
    rule.broken = True
    optimizer = mol.MultiOptimizer([optim.Adam(0.01), optim.Adam(0.02)], [rule], labels=["a", "b"])
    optimizer.state = {"states": states}
    with pytest.warns(RuntimeWarning, match=r"(?s)'layers.0.weight'.*state found in several "
                                            r"groups \(a, b\), so it cannot be attributed"):
        moves = optimizer.repartition(["ndim == 2"], model)
    assert ("layers.0.weight", None, "a") in moves
    assert float(mx.abs(optimizer.state["states"][0]["layers"][0]["weight"]["m"]).sum()) == 0


def test_a_rule_that_does_not_parse_still_refuses_and_changes_nothing():
    model, optimizer = locked_in()
    with pytest.raises(mol.RuleError):
        optimizer.repartition(["ndim == "], model)
    assert optimizer.filters[0].text == "shape[1] == 8"


def test_assign_despite_failures_equals_assign_without_failures():
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    rules = ["ndim == 2 and shape[0] == 8", 'glob("*bias")']
    assignment, failures = assign_despite_failures(model, rules, ["a", "b", "c"])
    assert failures == ()
    assert assignment.labels == mol.assign(model, rules, ["a", "b", "c"]).labels


def test_failures_are_found_among_many_parameters():
    tree = {f"p{i}": mx.zeros((4,) if i % 97 else (4, 8)) for i in range(2000)}
    assignment, failures = assign_despite_failures(tree, ["shape[1] == 8"], ["x", "rest"])
    assert {f.path for f in failures} == {f"p{i}" for i in range(2000) if i % 97}
    assert all(assignment.labels[f"p{i}"] == "x" for i in range(0, 2000, 97))


class TestTheEditorOpens:
    def test_with_the_error_under_the_failing_rule(self, recorded_comm):
        from multiopt_lab.widgets import RuleEditorWidget

        model, optimizer = locked_in()
        editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
        assert "index 1 is out of range" in editor.errors["sgd"].value
        assert "index 1 is out of range" in editor.text()
        assert editor.apply_button.disabled
        editor.inputs["sgd"].value = "ndim == 2 and shape[1] == 8"
        editor.flush()
        assert editor.errors["sgd"].value == "" and not editor.apply_button.disabled
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            editor.apply()
        assert optimizer.filters[0].text == "ndim == 2 and shape[1] == 8"
        assert editor.status_text.startswith("Applied")
        editor.close()

    def test_the_tree_and_the_lab_open_too(self, recorded_comm):
        from multiopt_lab.widgets import LabWidget, ParameterTreeWidget

        model, optimizer = locked_in()
        tree = ParameterTreeWidget(model, optimizer)
        assert "layers.0.bias" in tree.text() or "bias" in tree.text()
        lab = LabWidget(model, optimizer)
        assert "index 1 is out of range" in lab.text()
        tree.close()
        lab.close()
