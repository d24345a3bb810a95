"""Recipes on top of recipes: a recipe given a MultiOptimizer splits each of its groups.

``layerwise_lr_decay(model, no_weight_decay(model, optim.AdamW(1e-3)))``
gives every level of the model its scaled learning rate *and* leaves its
norms and biases undecayed, as timm's ``param_groups_layer_decay`` does. The
groups of the optimizer given come first (first match wins, so their order
decides), each split by the recipe: group ``g`` with rule ``r`` becomes
``g/level`` with rule ``r and level_rule``, under a copy of ``g``'s
optimizer changed as the recipe changes it (scaled learning rate, no weight
decay...). Splits that hold no parameter of the model are left out, and the
last group left is the fallback. The optimizer given is not changed; its
settings (``cache``, ``metrics_every``, ``compile``, ``skip_nonfinite``)
carry over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Sequence

import mlx.optimizers as optim
import numpy as np

from multiopt_lab._src.optimizer.groups import default_labels
from multiopt_lab._src.optimizer.multi_optimizer import MultiOptimizer
from multiopt_lab._src.partition.assignment import assign
from multiopt_lab._src.recipes.copies import check_fresh, fresh_copy
from multiopt_lab._src.rules import Rule, as_rule

__all__ = ["Group", "is_multi", "given_groups", "both", "split_groups", "expand_groups",
           "settings_of", "build_optimizer"]


@dataclass(frozen=True)
class Group:
    """One group a recipe builds.

    Attributes:
        label (str): Its label.
        rule (Rule | None): Its rule; None for the fallback (the last group).
        optimizer (Optimizer): Its own optimizer object.
    """

    label: str
    rule: Rule | None
    optimizer: optim.Optimizer


def is_multi(optimizer: Any) -> bool:
    """Whether ``optimizer`` is a MultiOptimizer (ours or MLX's): groups to split.
    """
    return isinstance(optimizer, optim.MultiOptimizer)


def given_groups(optimizer: Any, recipe: str, argument: str) -> list[Group] | None:
    """The groups of a MultiOptimizer given to a recipe, checked fresh; None for one optimizer.

    Raises:
        TypeError: ``optimizer`` is not an MLX optimizer.
        ValueError: It (or one of its groups' optimizers) has stepped already.
    """
    if not is_multi(optimizer):
        check_fresh(optimizer, recipe, argument)
        return None
    optimizers = list(optimizer.optimizers)
    labels = getattr(optimizer, "labels", None) or default_labels(optimizers)
    for label, sub in zip(labels, optimizers):
        check_fresh(sub, recipe, f"{argument}'s group {label!r}")
    filters = list(optimizer.filters)
    if not isinstance(optimizer, MultiOptimizer):
        filters = filters[: len(optimizers) - 1]  # MLX appends a catch-all for the last one
    rules = [as_rule(f) for f in filters] + [None]
    return [Group(label, rule, sub) for label, rule, sub in zip(labels, rules, optimizers)]


def both(first: Any, second: Any) -> Rule | None:
    """``first and second`` as one rule; None stands for "every parameter".
    """
    if first is None:
        return None if second is None else as_rule(second)
    if second is None:
        return as_rule(first)
    return as_rule(first) & as_rule(second)


def split_groups(given: Sequence[Group],
                 parts_of: Callable[[Group], list[tuple[str, Any, optim.Optimizer]] | None]
                 ) -> list[Group]:
    """Split each given group into the recipe's parts, given groups first (their order rules).

    ``parts_of(group)`` returns ``(label, rule or None, optimizer)`` per part,
    the last one's rule None (it takes the rest of the group); or None to keep
    the group whole (the recipe changes nothing for its optimizer).
    """
    groups: list[Group] = []
    for group in given:
        parts = parts_of(group)
        if parts is None:
            groups.append(Group(group.label, group.rule, fresh_copy(group.optimizer)))
            continue
        for label, rule, optimizer in parts:
            groups.append(Group(f"{group.label}/{label}", both(group.rule, rule), optimizer))
    return groups


def expand_groups(groups: Sequence[tuple[str, Any, Any]]) -> list[Group]:
    """Recipe groups whose optimizer may be a MultiOptimizer's groups: those expand in place.

    ``groups``: ``(label, rule or None, optimizer or list[Group])``; a list
    becomes ``label/inner`` groups with rule ``rule and inner_rule``.
    """
    out: list[Group] = []
    for label, rule, optimizer in groups:
        if isinstance(optimizer, list):
            out += [Group(f"{label}/{g.label}", both(rule, g.rule), fresh_copy(g.optimizer))
                    for g in optimizer]
        else:
            out.append(Group(label, None if rule is None else as_rule(rule), optimizer))
    return out


def settings_of(optimizer: Any) -> dict[str, Any]:
    """The MultiOptimizer settings to carry over from a given one (none for MLX's).
    """
    if not isinstance(optimizer, MultiOptimizer):
        return {}
    return {"cache": optimizer.cache, "metrics_every": optimizer.metrics_every,
            "compile": optimizer.compile, "skip_nonfinite": optimizer.skip_nonfinite}


def build_optimizer(table: Any, groups: Sequence[Group], settings: dict[str, Any] | None = None,
                    drop_empty: bool = False) -> MultiOptimizer:
    """The MultiOptimizer of ``groups`` (the last one the fallback).

    With ``drop_empty``, groups that hold no parameter of ``table`` are left
    out (a composition makes some: no norm is a hidden matrix), and the last
    group left becomes the fallback: for these parameters nothing changes.
    """
    groups = list(groups)
    if drop_empty and len(groups) > 1:
        winners = np.asarray(assign(table, [g.rule for g in groups[:-1]],
                                    [g.label for g in groups]).winners)
        held = set(np.unique(winners).tolist())
        kept = [g for i, g in enumerate(groups) if i in held]
        if kept and kept[-1] is not groups[-1]:
            last = kept[-1]
            kept[-1] = Group(last.label, None, last.optimizer)
        groups = kept or groups[-1:]
    return MultiOptimizer([g.optimizer for g in groups], [g.rule for g in groups[:-1]],
                          labels=[g.label for g in groups], **(settings or {}))
