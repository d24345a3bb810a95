"""The routing half of :class:`~multiopt_lab.optimizer.multi_optimizer.MultiOptimizer`.

Plan caching, assignments and repartitioning (requests from another thread
are in ``repartition_requests``).

Example:
    >>> import mlx.core as mx, mlx.optimizers as optim
    >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
    >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
    >>> params = {"w": mx.zeros((2, 2)), "b": mx.zeros((2,))}
    >>> opt.repartition(["ndim == 1"], params)
    [Move(path='w', source='sgd', target='adam'), Move(path='b', source='adam', target='sgd')]
"""

from __future__ import annotations

from typing import Any, Sequence

import mlx.optimizers as optim

from multiopt_lab.partition.assignment import Assignment, assign
from multiopt_lab.io.checkpoint_check import describe_paths, same_layout, template
from multiopt_lab.display import html_for
from multiopt_lab.optimizer.groups import check_filters, check_labels, check_optimizers
from multiopt_lab.optimizer.requests import RequestsMixin
from multiopt_lab.optimizer.repartition import (Move, existing_entry, migrated_states, moves_between,
                                          previous_owners)
from multiopt_lab.optimizer.plan import FlatLeaves, RoutingPlan, group_part
from multiopt_lab.partition.table import ParameterTable

__all__ = ["RoutingMixin"]


class RoutingMixin(RequestsMixin):
    """Plan cache, ``assign`` and ``repartition`` (see ``MultiOptimizer``)."""

    def _invalidate(self) -> None:
        self._plan = None
        self.version += 1

    def _group_index(self, paths: list[str], arrays: list[Any], model: Any = None) -> list[int]:
        # The model (when update() was handed one) tells which modules hold what;
        # walked only when a rule reads it.
        if not any(getattr(r, "needs_model", False) for r in self.filters):
            model = None
        assignment = assign(ParameterTable(zip(paths, arrays), model=model), self.filters, self.labels)
        # Kept for display and checks; with the arrays it would pin this step's
        # gradients (a copy of the model) for as long as the plan lives.
        assignment.table = assignment.table.without_values()
        self._last_assignment = assignment
        return assignment.winners.tolist()

    @property
    def last_assignment(self) -> Assignment | None:
        """The assignment of the parameters last routed, under the current rules.

        ``None`` before the first update (or ``init``). The rich display of
        the optimizer in a notebook shows it as a tree. It keeps the
        parameters' paths, shapes and dtypes, not their arrays, so after a
        change of rules a Python callable that reads values is re-run on
        zeros (rules on values need ``cache=False`` anyway).

        Example:
            >>> import mlx.core as mx, mlx.optimizers as optim
            >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
            >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
            >>> opt.last_assignment is None
            True
            >>> opt.init({"w": mx.zeros((2, 2))}); opt.last_assignment.labels
            {'w': 'sgd'}
        """
        last = getattr(self, "_last_assignment", None)
        if last is None:
            return None
        if last.group_labels != tuple(self.labels) or tuple(last.rules[:-1]) != tuple(self.filters):
            last = self._last_assignment = assign(last.table, self.filters, self.labels)
        return last

    def _repr_html_(self) -> str | None:
        return html_for("optimizer", self)

    def _plan_for(self, leaves: FlatLeaves, gradients: Any, model: Any = None) -> RoutingPlan:
        plan = self._plan
        if plan is not None and plan.matches(leaves, self.optimizers):
            if self.cache:
                return plan
            group_index = self._group_index(leaves.paths, leaves.gradients, model)
            if group_index == plan.group_index:
                return plan
            self._move_states(leaves, gradients, plan.group_index, group_index)
        self._plan = self._build_plan(leaves, gradients, model)
        self.version += 1
        return self._plan

    def _build_plan(self, leaves: FlatLeaves, gradients: Any, model: Any = None) -> RoutingPlan:
        group_index = self._group_index(leaves.paths, leaves.gradients, model)
        indices: list[list[int]] = [[] for _ in self.optimizers]
        for i, g in enumerate(group_index):
            indices[g].append(i)
        shapes, dtypes = leaves.signature()
        plan = RoutingPlan(list(leaves.paths), shapes, dtypes, group_index, indices)
        whole = gradients if len(self.optimizers) == 1 else None
        runs_own_code = [type(o).apply_gradients is not optim.Optimizer.apply_gradients
                         for o in self.optimizers]
        for g, optimizer in enumerate(self.optimizers):  # check all before changing any
            if not runs_own_code[g] and not optimizer._initialized:
                self._check_loaded_state(g, optimizer, leaves, indices[g])
        for g, optimizer in enumerate(self.optimizers):
            if not runs_own_code[g]:
                values = [leaves.gradients[i] for i in indices[g]]
                part = group_part([leaves.paths[i] for i in indices[g]], values, whole)
                optimizer.init(_pad_lists_like(part, optimizer.state))
        plan.bind_states(self.optimizers, runs_own_code, leaves, self.batch_small)
        # MLX's flag: "my state fits the parameters". An outer MultiOptimizer
        # holding this one checks it, and would otherwise re-plan every step.
        self._initialized = True
        return plan

    def _check_loaded_state(self, g: int, optimizer: Any, leaves: FlatLeaves,
                            indices: list[int]) -> None:
        # A state set from outside (a checkpoint) must fit these parameters
        # before init merges it: a wrong shape would broadcast silently.
        wrong = []
        for i in indices:
            entry = existing_entry(optimizer.state, leaves.paths[i])
            if entry:
                gradient = leaves.gradients[i]
                if not same_layout(entry, template(optimizer, gradient.shape, gradient.dtype)):
                    wrong.append(leaves.paths[i])
        if wrong:
            raise ValueError(
                f"the state of group {self.labels[g]!r} does not fit these parameters: "
                f"different state shapes for {describe_paths(wrong)}; it was set from another "
                "model or other rules (load checkpoints with load_state(..., parameters=model) "
                "to check them when loading)")

    def _move_states(self, leaves: FlatLeaves, gradients: Any, old_index: list[int],
                     new_index: list[int]) -> None:
        previous = previous_owners(leaves.paths, old_index, self.optimizers)
        group_paths = [[] for _ in self.optimizers]
        for path, g in zip(leaves.paths, new_index):
            group_paths[g].append(path)
        trees = migrated_states(self.optimizers, group_paths, gradients, previous)
        for optimizer, tree in zip(self.optimizers, trees):
            optimizer._state = tree
            optimizer._initialized = True

    def assign(self, parameters: Any) -> Assignment:
        """The assignment of ``parameters`` (a tree, a table or a model) to the groups.

        Example:
            >>> import mlx.core as mx, mlx.optimizers as optim
            >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
            >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
            >>> opt.assign({"w": mx.zeros((2, 2))}).labels
            {'w': 'sgd'}
        """
        return assign(parameters, self.filters, self.labels)

    def repartition(self, filters: Sequence[Any], parameters: Any,
                    labels: Sequence[str] | None = None,
                    optimizers: Sequence[optim.Optimizer] | None = None) -> list[Move]:
        """Switch to new rules between two steps; return what moved.

        A parameter that changes optimizer leaves its state behind (it is
        dropped) and starts fresh in its new group; every other parameter
        keeps its state dict untouched. The step counters stay. On any error
        (a rule that does not parse or fails on a parameter, a wrong count)
        nothing changes. A compiled step must be traced again afterwards:
        :func:`multiopt_lab.compile_step` does it by itself.

        Args:
            filters (list): New filters, one fewer than the optimizers.
            parameters: The model's (trainable) parameters, a tree or the model.
            labels (list[str], optional): New labels. Default: the current
                ones, or derived from ``optimizers`` when given.
            optimizers (list[Optimizer], optional): New optimizers; required to
                change the number of groups. An optimizer object present
                before keeps the state of the parameters it keeps.

        Returns:
            list[Move]: ``(path, source, target)`` for every moved parameter.

        Example:
            >>> import mlx.core as mx, mlx.optimizers as optim
            >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
            >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
            >>> opt.repartition(["ndim == 2"], {"w": mx.zeros((2, 2))})
            []
        """
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
        new_labels = check_labels(labels if labels is not None else default, new_optimizers)
        new_rules = check_filters(filters, new_optimizers, self.cache)
        old = assign(table, self.filters, self.labels).group_index
        new = assign(table, new_rules, new_labels).group_index
        paths = list(table.paths)
        previous = previous_owners(paths, [old[p] for p in paths], self.optimizers)
        owners = {p: new_optimizers[new[p]] for p in paths}
        group_paths = [[] for _ in new_optimizers]
        for p in paths:
            group_paths[new[p]].append(p)
        trees = migrated_states(new_optimizers, group_paths, tree, previous)
        moves = moves_between(paths, previous, owners,
                              {id(o): l for o, l in zip(self.optimizers, self.labels)},
                              {id(o): l for o, l in zip(new_optimizers, new_labels)})
        # Everything is computed: commit in one go.
        for optimizer, state in zip(new_optimizers, trees):
            optimizer._state = state
            optimizer._initialized = True
        self.optimizers, self.filters, self.labels = list(new_optimizers), new_rules, new_labels
        self._metric_arrays.clear()
        self._invalidate()
        return moves


def _pad_lists_like(part: Any, state: Any) -> Any:
    """``part`` with each list at least as long as the state's list at the same place.

    Freezing trailing list entries (``layers.2`` of 3) after training gives a
    shorter gradient list than the state holds; MLX's ``Optimizer.init``
    indexes the gradients by the state's length and raises IndexError.
    """
    if isinstance(part, dict) and isinstance(state, dict):
        return {k: _pad_lists_like(v, state[k]) if k in state else v for k, v in part.items()}
    if isinstance(part, (list, tuple)) and isinstance(state, (list, tuple)):
        padded = [_pad_lists_like(v, s) for v, s in zip(part, state)] + list(part[len(state):])
        return type(part)(padded + [{} for _ in range(len(state) - len(part))])
    return part
