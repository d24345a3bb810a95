"""The update loop of :class:`~multiopt_lab.optimizer.multi_optimizer.MultiOptimizer`, and ``compile``.

Example:
    >>> import mlx.optimizers as optim
    >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
    >>> MultiOptimizer([optim.SGD(0.1)], compile=True).compile
    True
"""

from __future__ import annotations

from typing import Any

from multiopt_lab.optimizer.plan import FlatLeaves, RoutingPlan, group_part, state_entry

__all__ = ["UpdateMixin"]


class UpdateMixin:
    """``compile``, ``compilations`` and the per-group update loop (see ``MultiOptimizer``)."""

    @property
    def compile(self) -> bool:
        """Whether eager updates run as one compiled function (see ``compile=``).

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
            >>> opt = MultiOptimizer([optim.SGD(0.1)]); opt.compile = True; opt.compile
            True
        """
        return self._compile

    @compile.setter
    def compile(self, compile: bool) -> None:
        if not isinstance(compile, bool):
            raise TypeError(f"expected compile to be True or False, found {compile!r}")
        self._compile = compile

    @property
    def compilations(self) -> int:
        """How many update functions ``compile=True`` compiled (one per structure and variant).

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
            >>> MultiOptimizer([optim.SGD(0.1)], compile=True).compilations
            0
        """
        return self._compiled.compilations

    def _update_leaves(self, plan: RoutingPlan, leaves: FlatLeaves, gradients: Any,
                       parameters: Any, *, batched: bool,
                       recording: bool) -> tuple[list, list[list]]:
        """Every group's update: new leaves, and per group its ``(gradient, old, new)`` pieces."""
        new = [None] * len(leaves.paths)
        grads, params = leaves.gradients, leaves.parameters
        pieces: list[list] = [[] for _ in self.optimizers]
        for g, optimizer in enumerate(self.optimizers):
            states = plan.states[g]
            if states is None:
                self._run_own_code(g, optimizer, plan, leaves, gradients, parameters, new)
                if recording:
                    pieces[g] = [(grads[i], params[i], new[i]) for i in plan.indices[g]]
                continue
            for name, scheduler in optimizer._schedulers.items():
                optimizer.state[name] = scheduler(optimizer.step)
            optimizer.state["step"] = optimizer.step + 1
            apply_single = optimizer.apply_single
            if batched:
                for bucket in plan.buckets[g]:
                    flat = bucket.apply(apply_single, grads, params, new)
                    if recording:
                        pieces[g].append(flat)
                pairs = plan.singles[g]
            else:
                pairs = zip(plan.indices[g], states)
            for i, state in pairs:
                new[i] = apply_single(grads[i], params[i], state)
                if recording:
                    pieces[g].append((grads[i], params[i], new[i]))
        return new, pieces

    def _run_own_code(self, g, optimizer, plan, leaves, gradients, parameters, new) -> None:
        # An optimizer that overrides apply_gradients (a nested MultiOptimizer,
        # a custom clipping optimizer) gets its sub-tree, as in MLX.
        paths = [leaves.paths[i] for i in plan.indices[g]]
        whole = gradients if len(self.optimizers) == 1 else None
        part = group_part(paths, [leaves.gradients[i] for i in plan.indices[g]], whole)
        result = optimizer.apply_gradients(part, parameters)
        for i, path in zip(plan.indices[g], paths):
            new[i] = state_entry(result, path)
