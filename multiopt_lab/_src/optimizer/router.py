"""The partition a MultiOptimizer trains with, and its routing plan, cached per structure.

A :class:`Router` holds the groups (optimizers, filters, labels) and the
:class:`~multiopt_lab._src.optimizer.plan.RoutingPlan` of the last gradient
structure. It routes: :meth:`Router.plan_for` returns the cached plan or
builds one (checking the state the groups already hold before any is
initialised). It repartitions in two halves, so that nothing is changed
unless everything could be computed: :meth:`Router.prepare` computes the new
groups and state trees, :meth:`Router.commit` installs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Sequence

import mlx.nn as nn

from multiopt_lab._src.optimizer.groups import (check_filters, check_optimizers, filter_list,
                                           group_labels)
from multiopt_lab._src.mlx_internals import runs_own_update
from multiopt_lab._src.optimizer.leaves import FlatLeaves, group_part, pad_lists_like
from multiopt_lab._src.optimizer.plan import RoutingPlan
from multiopt_lab._src.optimizer.repartition import (Move, migrated_states, moves_between,
                                                previous_owners)
from multiopt_lab._src.optimizer.state import install_state
from multiopt_lab._src.optimizer.state_layout import existing_entry, fresh_entry, layout_problem
from multiopt_lab._src.partition.assignment import Assignment, assign
from multiopt_lab._src.partition.rule_failures import (RuleFailure, assign_despite_failures,
                                                  failure_summary)
from multiopt_lab._src.partition.table import ParameterTable
from multiopt_lab._src.rules import Rule
from multiopt_lab._src.text_fit import describe_paths

__all__ = ["Router", "Change"]


@dataclass
class Change:
    """A repartition computed by :meth:`Router.prepare`, not yet installed.

    Attributes:
        optimizers, filters, labels: The new groups.
        trees (list[dict]): Each new optimizer's whole state tree.
        fresh (list): Every array initialised for a parameter that moved or
            had no state (lazy until evaluated).
        moves (list[Move]): What moves, ``(path, source, target)``.
        note (str): What happened to parameters the rules in force fail on
            (their state kept, started fresh or dropped); ``""`` when none.
    """

    optimizers: tuple
    filters: tuple[Rule, ...]
    labels: tuple[str, ...]
    trees: list[dict]
    fresh: list
    moves: list[Move]
    note: str = ""


class Router:
    """The groups of a MultiOptimizer and the routing plan of the last gradient structure.

    Args:
        optimizers (list[Optimizer]): One per group.
        filters (list): One fewer than ``optimizers`` (see ``MultiOptimizer``).
        labels (list[str] | None): Group names; None derives them from the classes.
        cache (bool): Route once per structure; False re-runs the filters every step.

    Attributes:
        optimizers (tuple), filters (tuple[Rule, ...]), labels (tuple[str, ...]):
            The groups, replaced together by :meth:`commit` only.
        cache (bool): As given.
        plan (RoutingPlan | None): The cached plan; None until the next update
            after any change.
        version (int): Goes up whenever the routing changes.
        replacements (int): Goes up whenever the groups' state trees were
            replaced (their dicts kept, their contents new).
    """

    def __init__(self, optimizers: Sequence[Any], filters: Sequence[Any],
                 labels: Sequence[str] | None, cache: bool):
        optimizers = check_optimizers(optimizers)
        self.cache = bool(cache)
        self.filters = check_filters(filters, optimizers, self.cache)
        self.labels = group_labels(labels, optimizers)
        self.optimizers = tuple(optimizers)
        self.plan: RoutingPlan | None = None
        self.version = 0
        self._last_assignment: Assignment | None = None
        self.replacements = 0

    def invalidate(self) -> None:
        """Drop the plan (the next update routes again) and count a change."""
        self.plan = None
        self.version += 1

    # -- assignments ---------------------------------------------------------------------
    def assign(self, parameters: Any) -> Assignment:
        """The assignment of ``parameters`` (a tree, a table or a model) to the groups."""
        return assign(parameters, self.filters, self.labels, optimizers=self.optimizers)

    def _group_index(self, leaves: FlatLeaves, parameters: Any) -> list[int]:
        # ``parameters`` is what the update was handed: the model itself under
        # ``Optimizer.update(model, gradients)``, else a tree. Rules reading
        # ``module`` need the model; it is walked only when a rule reads it.
        # The module classes also tell the findings what each parameter is (an
        # embedding, an expert stack): kept when the model is at hand, unless the
        # filters run on every step (cache=False) and none reads them.
        needs_model = any(getattr(rule, "needs_model", False) for rule in self.filters)
        wanted = needs_model or self.cache
        model = parameters if wanted and isinstance(parameters, nn.Module) else None
        try:
            table = ParameterTable(zip(leaves.paths, leaves.gradients), model=model)
        except ValueError:
            if needs_model:
                raise
            table = ParameterTable(zip(leaves.paths, leaves.gradients))
        assignment = assign(table, self.filters, self.labels, optimizers=self.optimizers)
        # Kept for display and checks; with the arrays it would pin this step's
        # gradients (a copy of the model) for as long as the plan lives.
        assignment.table = assignment.table.without_values()
        self._last_assignment = assignment
        return assignment.winners.tolist()

    @property
    def last_assignment(self) -> Assignment | None:
        """The assignment of the parameters last routed, under the current rules (or None)."""
        last = self._last_assignment
        if last is None:
            return None
        if (last.group_labels != tuple(self.labels) or tuple(last.rules[:-1]) != tuple(self.filters)
                or last.optimizers != tuple(self.optimizers)):
            last = self._last_assignment = assign(last.table, self.filters, self.labels,
                                                  optimizers=self.optimizers)
        return last

    # -- routing -------------------------------------------------------------------------
    def plan_for(self, leaves: FlatLeaves, gradients: Any, parameters: Any,
                 batch: bool) -> RoutingPlan:
        """The plan for this step's leaves: the cached one, or a new one (state initialised).

        With ``cache=False`` the filters run again; a parameter that changes
        group moves its state as a repartition would.
        """
        plan = self.plan
        if plan is not None and plan.matches(leaves, self.optimizers):
            if self.cache:
                return plan
            group_index = self._group_index(leaves, parameters)
            if group_index == plan.group_index:
                return plan
            self._move_states(leaves, gradients, plan.group_index, group_index)
        self.plan = self._build_plan(leaves, gradients, parameters, batch)
        self.version += 1
        return self.plan

    def _build_plan(self, leaves: FlatLeaves, gradients: Any, parameters: Any,
                    batch: bool) -> RoutingPlan:
        group_index = self._group_index(leaves, parameters)
        indices: list[list[int]] = [[] for _ in self.optimizers]
        for i, g in enumerate(group_index):
            indices[g].append(i)
        shapes, dtypes = leaves.signature()
        plan = RoutingPlan(list(leaves.paths), shapes, dtypes, group_index, indices)
        whole = gradients if len(self.optimizers) == 1 else None
        runs_own_code = [runs_own_update(o) for o in self.optimizers]
        for g, optimizer in enumerate(self.optimizers):  # check all before changing any
            if not runs_own_code[g]:
                self._check_state_fits(g, optimizer, leaves, indices[g])
        for g, optimizer in enumerate(self.optimizers):
            if not runs_own_code[g]:
                values = [leaves.gradients[i] for i in indices[g]]
                part = group_part([leaves.paths[i] for i in indices[g]], values, whole)
                optimizer.init(pad_lists_like(part, optimizer.state))
        plan.bind_states(self.optimizers, runs_own_code, leaves, batch)
        return plan

    def _check_state_fits(self, g: int, optimizer: Any, leaves: FlatLeaves,
                          indices: list[int]) -> None:
        # The state a group already holds (set from a checkpoint, or stepped on
        # parameters that have changed since) must fit these parameters before
        # init merges it: a wrong shape would broadcast silently.
        # Same keys, shapes and exact dtypes as the group's optimizer makes
        # (optimizer/state_layout.py): a state of another precision would
        # change the parameter's dtype at this step.
        wrong = []
        fresh_by_layout: dict[tuple, dict] = {}
        for i in indices:
            entry = existing_entry(optimizer.state, leaves.paths[i])
            if entry:
                gradient = leaves.gradients[i]
                layout = (tuple(gradient.shape), gradient.dtype)
                fresh = fresh_by_layout.get(layout)
                if fresh is None:
                    fresh = fresh_by_layout[layout] = fresh_entry(optimizer, *layout)
                problem = layout_problem(entry, fresh)
                if problem is not None:
                    wrong.append(f"{leaves.paths[i]!r}: {problem[1]}")
        if wrong:
            raise ValueError(
                f"the state of group {self.labels[g]!r} does not fit these parameters: "
                f"{'; '.join(wrong[:5])}{f'; and {len(wrong) - 5} more' if len(wrong) > 5 else ''}."
                " It was set from another model or other rules, or a parameter changed shape "
                "or dtype since it was stepped (model.set_dtype after training: MLX would turn "
                "the parameter back to the state's dtype); nothing was updated (load "
                "checkpoints with load_state(..., parameters=model) to check them when loading, "
                "with strict=False to start what does not fit afresh)")

    def _move_states(self, leaves: FlatLeaves, gradients: Any, old_index: list[int],
                     new_index: list[int]) -> None:
        previous = previous_owners(leaves.paths, old_index, self.optimizers)
        group_paths: list[list[str]] = [[] for _ in self.optimizers]
        for path, g in zip(leaves.paths, new_index):
            group_paths[g].append(path)
        trees = migrated_states(self.optimizers, group_paths, gradients, previous)
        for optimizer, tree in zip(self.optimizers, trees):
            install_state(optimizer, tree)
        self.replacements += 1

    # -- repartitioning ------------------------------------------------------------------
    def prepare(self, filters: Sequence[Any], parameters: Any,
                labels: Sequence[str] | None = None,
                optimizers: Sequence[Any] | None = None) -> Change:
        """Compute a repartition (see ``MultiOptimizer.repartition``); nothing is changed.

        Raises:
            ValueError, TypeError, RuleError: On a wrong count, bad labels or
                optimizers, or a rule that does not parse or fails on a parameter.
        """
        filters = filter_list(filters)
        table = ParameterTable.from_tree(parameters)
        tree = parameters.trainable_parameters() if hasattr(parameters, "trainable_parameters") \
            else parameters
        new_optimizers = self.optimizers if optimizers is None else check_optimizers(optimizers)
        if optimizers is None and len(list(filters)) != len(self.optimizers) - 1:
            raise ValueError(
                f"Given {len(list(filters))} filters but this optimizer has "
                f"{len(self.optimizers)} groups ({', '.join(self.labels)}), so "
                f"{len(self.optimizers) - 1} are needed; to change the number of groups pass "
                "the new optimizers too (optimizers=[...])")
        default = self.labels if optimizers is None else None
        new_labels = group_labels(labels if labels is not None else default, new_optimizers)
        new_rules = check_filters(filters, new_optimizers, self.cache)
        new = assign(table, new_rules, new_labels).group_index
        paths = list(table.paths)
        # The rules in force may fail on some parameters (shape[1] on a bias just
        # unfrozen): replacing them must still work, so their group is found otherwise.
        current, failures = assign_despite_failures(table, self.filters, self.labels)
        old = current.group_index
        previous = previous_owners(paths, [old[p] for p in paths], self.optimizers)
        note = self._owners_despite_failures(previous, failures) if failures else ""
        owners = {p: new_optimizers[new[p]] for p in paths}
        group_paths: list[list[str]] = [[] for _ in new_optimizers]
        for p in paths:
            group_paths[new[p]].append(p)
        fresh: list = []
        trees = migrated_states(new_optimizers, group_paths, tree, previous, fresh)
        moves = moves_between(paths, previous, owners,
                              {id(o): label for o, label in zip(self.optimizers, self.labels)},
                              {id(o): label for o, label in zip(new_optimizers, new_labels)})
        return Change(tuple(new_optimizers), new_rules, new_labels, trees, fresh, moves, note)

    def _owners_despite_failures(self, previous: dict[str, Any],
                                 failures: Sequence[RuleFailure]) -> str:
        """Fix ``previous`` (path -> optimizer) for the parameters the rules in force fail on;
        return what happened to their state, in words.

        Their group is the one the last routing under these rules gave, else the one
        group whose state holds an entry for them; a parameter whose state sits in
        several groups cannot be attributed (its state is dropped), one without state
        starts fresh.
        """
        last = self._last_assignment
        routed = (last.group_index if last is not None and last.group_labels == tuple(self.labels)
                  and tuple(last.rules[:-1]) == tuple(self.filters) else {})
        kept: dict[str, str] = {}
        by_routing: dict[str, str] = {}
        none: list[str] = []
        several: dict[str, list[str]] = {}
        for path in dict.fromkeys(f.path for f in failures):
            g = routed.get(path)
            if g is not None:
                previous[path] = self.optimizers[g]
                by_routing[path] = self.labels[g]
                continue
            holders = [i for i, o in enumerate(self.optimizers) if existing_entry(o.state, path)]
            if len(holders) == 1:
                previous[path] = self.optimizers[holders[0]]
                kept[path] = self.labels[holders[0]]
            else:
                previous.pop(path, None)
                if holders:
                    several[path] = [self.labels[i] for i in holders]
                else:
                    none.append(path)
        lines = [failure_summary(failures),
                 "so the group these parameters were in is not known from the rules; the "
                 "repartition went ahead (the new rules replace the failing ones):"]
        for found, how in ((by_routing, "routed to group {!r} at the last update under these "
                                        "rules"),
                           (kept, "state found in group {!r} only")):
            by_label: dict[str, list[str]] = {}
            for path, label in found.items():
                by_label.setdefault(label, []).append(path)
            lines += [f"  {describe_paths(p, 5)}: {how.format(label)}, treated as their old "
                      "group (their state kept there, or moved as usual)"
                      for label, p in by_label.items()]
        if none:
            lines.append(f"  {describe_paths(none, 5)}: no group held state for them (never "
                         "stepped, e.g. frozen until now); they start fresh in their new group")
        if several:
            lines.append(f"  {describe_paths(list(several), 5)}: state found in several groups "
                         f"({', '.join(sorted({g for held in several.values() for g in held}))}), so it "
                         "cannot be attributed; it was dropped and they start fresh in their new "
                         "group")
        return "\n".join(lines)

    def commit(self, change: Change) -> None:
        """Install a prepared repartition: the new groups and every group's new state tree.

        Each optimizer keeps its state dict; its contents are replaced.
        """
        for optimizer, tree in zip(change.optimizers, change.trees):
            install_state(optimizer, tree)
        self.optimizers, self.filters, self.labels = change.optimizers, change.filters, change.labels
        self.invalidate()
        self.replacements += 1
