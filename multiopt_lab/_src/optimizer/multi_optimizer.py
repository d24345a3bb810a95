"""A drop-in for ``mlx.optimizers.MultiOptimizer``: same results, cached routing, named groups.

``MultiOptimizer`` holds named parts, each with its own state: a
:class:`~multiopt_lab._src.optimizer.router.Router` (the groups and the routing
plan), :class:`~multiopt_lab._src.optimizer.requests.RepartitionRequests` (edits
from another thread), a :class:`~multiopt_lab._src.optimizer.recorder.MetricsRecorder`,
a :class:`~multiopt_lab._src.optimizer.nonfinite.NonfiniteGuard` (optional), a
:class:`~multiopt_lab._src.optimizer.compiled_update.CompiledUpdate` and the
:class:`~multiopt_lab._src.optimizer.state.StateContainer` that ``state`` returns
(one dict for the optimizer's lifetime, changed in place, so a step compiled
with ``inputs=state, outputs=state`` follows every change). One update is
:meth:`MultiOptimizer.apply_gradients`, below, top to bottom.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any
from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn  # noqa: F401 - the docstring examples use it
import mlx.optimizers as optim
from mlx.utils import tree_flatten

from multiopt_lab._src.arguments import check_flag
from multiopt_lab._src.partition.arguments import check_parameters
from multiopt_lab._src.display import html_for
from multiopt_lab._src.mlx_internals import init_base, install_state_dict, mark_initialized, state_dict
from multiopt_lab._src.optimizer.compiled_update import CompiledUpdate
from multiopt_lab._src.optimizer.groups import check_filters, group_labels
from multiopt_lab._src.optimizer.metrics import metrics_of_update, nonfinite_groups
from multiopt_lab._src.optimizer.nonfinite import NonfiniteGuard
from multiopt_lab._src.optimizer.parameter_metrics import ParameterMetrics
from multiopt_lab._src.optimizer.plan import RoutingPlan
from multiopt_lab._src.optimizer.leaves import FlatLeaves, flatten_with_parameters
from multiopt_lab._src.optimizer.rates import learning_rates_of, set_learning_rates
from multiopt_lab._src.optimizer.recorder import MetricsRecorder
from multiopt_lab._src.optimizer.repartition import Move
from multiopt_lab._src.optimizer.reporting import warn_once
from multiopt_lab._src.optimizer.requests import PendingRepartition, RepartitionRequests
from multiopt_lab._src.optimizer.router import Router
from multiopt_lab._src.optimizer.state import StateContainer, install_state
from multiopt_lab._src.optimizer.state_layout import state_mismatches
from multiopt_lab._src.optimizer.update import update_groups
from multiopt_lab._src.partition.assignment import Assignment
from multiopt_lab._src.trees.rebuild import rebuild_tree

__all__ = ["MultiOptimizer"]


class MultiOptimizer(optim.MultiOptimizer):
    """Several optimizers, each on the parameters its rule picks; the last takes the rest.

    Same positional arguments, ``state`` layout and results (to the last bit)
    as ``mlx.optimizers.MultiOptimizer``, with the routing computed once per
    gradient structure instead of on every step.

    Args:
        optimizers (list[Optimizer]): One optimizer per group.
        filters (list, optional): One fewer than ``optimizers``: rule strings
            (``"ndim == 2"``), ``Rule`` s or callables ``(path, array) -> bool``.
            First match wins; the last optimizer takes what no filter took.
            Default: ``()``.
        labels (list[str], optional): Group names. Default: from the classes,
            made unique (``("adamw", "adamw_2")``).
        cache (bool, optional): Route once per structure (paths, shapes,
            dtypes). Pass ``False`` when a filter reads parameter values; it
            then runs on every step, as in MLX. Default: ``True``.
        metrics_every (int, optional): Record per-group metrics on steps 1,
            1 + k, 1 + 2k, ... Default: ``None`` (off).
        per_parameter (bool, optional): On the steps metrics are recorded,
            also record every parameter's update, gradient and parameter
            norms and update ratio (:attr:`parameter_metrics`), in the same
            graph; each group's numbers are then the roll-up of its
            parameters'. Default: ``False``.
        compile (bool, optional): Compile the update of all groups into one
            function per tree structure (an eager loop's update then runs
            in about a third of the time); results then equal the eager
            ones within float rounding, not to the last bit. Ignored under
            an outer ``mx.compile``. Default: ``False``.
        skip_nonfinite (bool, optional): When a gradient or an update of any
            group holds a NaN or an inf, leave the parameters and every
            group's state as they were (lazily, also under ``mx.compile``);
            see ``skipped_steps`` and ``skipped_groups``. Default: ``False``.
        warn_findings (bool, optional): At the first update of each routing
            (the first step, the first after a repartition), warn once per
            finding of severity error or warning (Muon on a parameter below
            2-D, a dead rule, a near miss...: see
            ``optimizer.last_assignment.diagnostics``). Default: ``True``.

    Example:
        >>> import mlx.optimizers as optim
        >>> MultiOptimizer([optim.AdamW(1e-3), optim.AdamW(1e-2)], ["ndim == 1"]).labels
        ('adamw', 'adamw_2')
    """

    def __init__(self, optimizers: Sequence[optim.Optimizer], filters: Sequence[Any] = (), *,
                 labels: Sequence[str] | None = None, cache: bool = True,
                 metrics_every: int | None = None, compile: bool = False,
                 skip_nonfinite: bool = False, warn_findings: bool = True,
                 per_parameter: bool = False):
        check_flag(compile, "MultiOptimizer()", "compile")
        check_flag(cache, "MultiOptimizer()", "cache")
        check_flag(skip_nonfinite, "MultiOptimizer()", "skip_nonfinite")
        check_flag(warn_findings, "MultiOptimizer()", "warn_findings")
        check_flag(per_parameter, "MultiOptimizer()", "per_parameter")
        router = Router(optimizers, filters, labels, cache)
        recorder = MetricsRecorder(metrics_every, per_parameter)
        init_base(self)  # MLX's MultiOptimizer.__init__ would assign the read-only groups
        self._router = router
        self._requests = RepartitionRequests()
        self._recorder = recorder
        self._nonfinite = NonfiniteGuard(len(router.optimizers)) if skip_nonfinite else None
        self._compiled = CompiledUpdate()
        self._compile = compile
        self._container = StateContainer(router.optimizers)
        # MLX's methods and an outer multi-optimizer read the one state dict.
        install_state_dict(self, self._container.tree)
        self._show_metrics()
        self._container.show("nonfinite", None if self._nonfinite is None else self._nonfinite.arrays)
        # Arrays made on this thread are bound to its stream until evaluated
        # (a schedule's first value is lazy): evaluated, any thread may train.
        try:
            mx.eval(self._container.tree)
        except RuntimeError:
            pass  # made on another thread: only that thread can compute them
        #: Whether an update ever ran inside ``mx.compile``: a compiled step may
        #: then hold a trace of the old routing, so a new routing marks the state.
        self._ever_traced = False
        #: How updates arrive: "eager"; "traced" (the last one inside ``mx.compile``,
        #: and nothing calls ``between_steps``: a request would wait unseen, so
        #: ``request_repartition`` warns); "between_steps" (called: requests land there).
        self._driven_by = "eager"
        #: Update small parameters of elementwise optimizers in one call per
        #: bucket (same bits, fewer kernels; see ``optimizer.batching``).
        self.batch_small = True
        # Held for a whole update and a whole repartition, so the live rule
        # editor (on another thread) never swaps the routing mid-update.
        self._update_lock = threading.RLock()
        #: Updates applied so far (a plain int: other threads may read it
        #: without touching MLX arrays).
        self.update_count = 0
        self._metrics_changes = 0
        #: Warn about the findings of each new routing at its first update.
        self.warn_findings = warn_findings
        #: Keys of the findings already reported (by this optimizer, ``train()`` or
        #: the mlx-lm callback): each is warned about once.
        self.reported_findings: set = set()
        self._findings_version = -1

    # -- the groups (read-only: change them with repartition) ---------------------------
    @property
    def optimizers(self) -> tuple[optim.Optimizer, ...]:
        """The optimizer of each group, in order (read-only: see :meth:`repartition`)."""
        return self._router.optimizers

    @optimizers.setter
    def optimizers(self, _value: Any) -> None:
        _read_only("optimizers", "optimizers=[...]")

    @property  # type: ignore[override]  # MLX's is a list attribute; ours is read-only
    def filters(self) -> tuple:
        """The rule of each group but the last, as ``Rule`` s (read-only: see :meth:`repartition`).

        Example:
            >>> import mlx.optimizers as optim
            >>> MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"]).filters
            (Rule('ndim == 2'),)
        """
        return self._router.filters

    @filters.setter
    def filters(self, _value: Any) -> None:
        _read_only("filters", "the new filters")

    @property
    def labels(self) -> tuple[str, ...]:
        """The name of each group (read-only: see :meth:`repartition`)."""
        return self._router.labels

    @labels.setter
    def labels(self, _value: Any) -> None:
        _read_only("labels", "labels=[...]")

    @property
    def cache(self) -> bool:
        """Whether the routing is computed once per structure (set at construction)."""
        return self._router.cache

    @property
    def version(self) -> int:
        """Goes up whenever the routing, the state or ``metrics_every`` changes.

        Example:
            >>> import mlx.optimizers as optim
            >>> MultiOptimizer([optim.SGD(0.1)]).version
            0
        """
        return self._router.version + self._metrics_changes

    @property
    def update_lock(self) -> threading.RLock:
        """The lock held for a whole update and a whole repartition.

        Hold it around a call of a compiled step (``compile_step`` does), so
        that a repartition from another thread lands before or after it.

        Example:
            >>> import mlx.optimizers as optim
            >>> with MultiOptimizer([optim.SGD(0.1)]).update_lock:
            ...     pass
        """
        return self._update_lock

    @property
    def activity(self) -> tuple:
        """``(update_count, step array)``: changes whenever a step ran, eager or compiled.

        A compiled step's replays never run :meth:`update` in Python (so
        ``update_count`` stands still) but each writes a new step counter
        into the state. Compare two readings element by element (``!=``,
        then ``is not``); reading it never touches MLX arrays, so any thread
        may, while another trains.

        Example:
            >>> import mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.1)])
            >>> before = opt.activity
            >>> before[0] == opt.activity[0] and before[1] is opt.activity[1]
            True
        """
        return self.update_count, (state_dict(self.optimizers[0]) or {}).get("step")

    @property
    def routing_plan(self) -> RoutingPlan | None:
        """The routing of the last structure stepped on (paths, shapes, dtypes, group of
        each); None until the next update after any change of the groups or rules.

        ``load_state`` without ``parameters=`` checks a checkpoint against it.

        Example:
            >>> import mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
            >>> opt.routing_plan is None
            True
            >>> params = {"w": mx.zeros((2, 2)), "b": mx.zeros((2,))}
            >>> _ = opt.apply_gradients(params, params)
            >>> opt.routing_plan.paths, opt.routing_plan.group_index
            (['w', 'b'], [0, 1])
        """
        return self._router.plan

    # -- MLX's API ---------------------------------------------------------------------
    def init(self, parameters: dict) -> None:
        """Initialise every group's state for ``parameters`` (optional, as in MLX).

        ``parameters`` may also be the model itself (its trainable
        parameters are used), which rules reading ``module`` need.

        Example:
            >>> import mlx.nn as nn, mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.1, momentum=0.9)])
            >>> opt.init(nn.Linear(2, 2).parameters()); sorted(opt.state["states"][0])
            ['bias', 'learning_rate', 'step', 'weight']
        """
        check_parameters(parameters, "init()")
        with self._update_lock:
            self._follow_replaced_states()
            self._router.invalidate()
            # The model itself may be given: rules reading module kinds need it.
            tree = _trainable(parameters)
            leaves = flatten_with_parameters(tree, tree)
            made = _arrays_made_by(lambda: self._plan_for(leaves, tree, parameters),
                                   self._container.tree)
            _evaluate_here(made)
            mark_initialized(self)
            if self._recorder.per_parameter:
                self._show_metrics()  # one row per parameter: known now

    def apply_gradients(self, gradients: dict, parameters: dict) -> dict:
        """Apply each group's optimizer to its gradients; return the new parameters.

        The result has the structure of ``gradients`` (MLX's returns the same
        leaves, with dict keys in another order).

        Example:
            >>> import mlx.core as mx, mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.5)])
            >>> opt.apply_gradients({"w": mx.array([1.0])}, {"w": mx.array([1.0])})["w"].item()
            0.5
        """
        with self._update_lock:
            self.update_count += 1
            # 1. An edit asked for from another thread lands here, whole or not at all.
            if self._requests.pending is not None:
                self.apply_pending_repartition(parameters)
            # 2. Check the gradients against the parameters (names the path of a
            #    missing parameter or a wrong shape), then route: the cached plan
            #    for this structure, or a new one. Nothing has changed so far.
            leaves = flatten_with_parameters(gradients, parameters)
            optimizers = self.optimizers
            tracing = _is_tracing(optimizers[0].state.get("step"))
            self._ever_traced = self._ever_traced or tracing
            if self._driven_by != "between_steps":
                self._driven_by = "traced" if tracing else "eager"
            self._follow_replaced_states()
            plan = self._plan_for(leaves, gradients, parameters)
            if self.warn_findings and self._findings_version != self._router.version:
                self._report_findings()
            # MLX's flag: "my state fits the parameters". An outer MultiOptimizer
            # holding this one checks it, and would otherwise re-plan every step.
            mark_initialized(self)
            recorder = self._recorder
            recording = recorder.records(lambda: _next_step(optimizers), tracing)
            per_parameter = recording and recorder.per_parameter
            guard = self._nonfinite
            before = None if guard is None else guard.before(optimizers)
            # 3. Step every group: one compiled function, or group by group. Under
            #    an outer mx.compile the whole step is one graph already: no nesting.
            compiled = None
            if self._compile and not tracing:
                compiled = self._compiled.apply(plan, leaves, gradients, optimizers,
                                                self._router.version, recording, per_parameter)
            metrics: dict[str, Any] | None
            if compiled is not None:
                new, metrics = compiled
            else:
                # Under mx.compile the fused per-parameter kernels beat concatenation.
                new, pieces = update_groups(optimizers, plan, leaves, gradients, parameters,
                                            batched=self.batch_small and not tracing,
                                            recording=recording, per_parameter=per_parameter)
                metrics = (metrics_of_update(pieces, optimizers, per_parameter)
                           if recording else None)
            # 4. Metrics (lazy arrays, computed with the update), then the NaN/inf guard.
            if recording:
                recorder.store(metrics, tracing,  # type: ignore[arg-type]  # recording: made above
                               (plan.paths, plan.group_index) if per_parameter else None)
            if guard is not None:
                new = guard.after(optimizers, before, leaves.gradients, leaves.parameters, new,  # type: ignore[arg-type]  # with a guard, before is its list
                                  plan.indices)
            return rebuild_tree(gradients, new)

    @property
    def state(self) -> dict:
        """``{"states": [each optimizer's state]}``, MLX's layout, as one dict for good.

        While metrics are on (``metrics_every`` set) it also holds
        ``"metrics"``: the last recorded metric arrays, so that evaluating the
        state computes them and a compiled step carries them out; with
        ``skip_nonfinite``, ``"nonfinite"``; after a repartition or a new
        state of an optimizer a compiled step has traced, ``"routing"`` (see
        :mod:`multiopt_lab._src.optimizer.state`).
        :func:`multiopt_lab.save_state` saves ``"states"`` only.

        The dict and the dicts inside it stay the same objects: a step
        compiled with ``mx.compile(step, inputs=state, outputs=state)`` and
        ``state = [model.state, optimizer.state]`` sees every later change.
        Setting it checks the new state against the live one first (the
        shape and dtype of every array both hold; the error names the path)
        and changes nothing when it does not fit. Reading it changes nothing:
        a group's state set on its own optimizer (``opt.optimizers[0].state =
        ...``) is taken into this dict at the next step boundary
        (:meth:`update`, :meth:`init` or :meth:`between_steps`).

        Example:
            >>> import mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.1)])
            >>> held = opt.state; opt.state = {"states": [{"step": opt.step}]}
            >>> held is opt.state, list(held)
            (True, ['states'])
        """
        return self._container.tree

    @state.setter
    def state(self, state: dict) -> None:
        expected = (f"expected a dict {{'states': [...]}} with {len(self.optimizers)} "
                    f"sub-states (one per group: {', '.join(self.labels)})")
        if not isinstance(state, dict) or "states" not in state:
            raise ValueError(f"Invalid state provided: {expected}, found "
                             f"{type(state).__name__} with keys {_keys(state)}")
        states = state["states"]
        if not isinstance(states, (list, tuple)) or len(states) != len(self.optimizers):
            found = len(states) if isinstance(states, (list, tuple)) else type(states).__name__
            raise ValueError(f"Invalid state provided: {expected}, found {found}")
        for i, sub in enumerate(states):
            if not isinstance(sub, dict):
                raise ValueError(f"Invalid state provided: {expected}, found a "
                                 f"{type(sub).__name__} for group {self.labels[i]!r}")
        with self._update_lock:
            problems = [f"group {label!r}: {problem}"
                        for label, optimizer, sub in zip(self.labels, self.optimizers, states)
                        for problem in state_mismatches(optimizer.state, sub)]
            if problems:
                shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more"
                                                   if len(problems) > 5 else "")
                raise ValueError(f"Invalid state provided: it does not fit this optimizer's live "
                                 f"state: {shown}. Nothing was changed; load a state saved from "
                                 "this model and these rules")
            _evaluate_here(list(states))  # usable from any thread, like the rest of the state
            if self._nonfinite is not None:
                self._nonfinite.load(state.get("nonfinite"))  # validates before changing anything
            for optimizer, sub in zip(self.optimizers, states):
                install_state(optimizer, sub, initialized=False)
            metrics = state.get("metrics")
            self._recorder.clear()
            if isinstance(metrics, dict) and metrics:
                self._recorder.store(metrics, tracing=False)
            self._show_metrics()
            self._router.invalidate()
            self._show_new_states()

    def _follow_replaced_states(self) -> None:
        # The step boundary (update, init, between_steps), the one place that
        # looks: a group's state dict replaced from outside (opt.optimizers[0].state
        # = ...) has its contents put into the dict the state and any compiled
        # step hold, and the routing is planned again.
        if self._container.sync(self.optimizers):
            self._router.invalidate()
            if self._ever_traced:
                self._container.routing_changed()

    def _show_new_states(self) -> None:
        # We replaced the groups' state trees (a repartition, the state setter, a
        # parameter moved by cache=False): the state shows them (a nested
        # multi-optimizer's view is read again), and compiled steps trace again.
        self._container.sync(self.optimizers, refresh=True)
        if self._ever_traced:
            self._container.routing_changed()

    def _plan_for(self, leaves: FlatLeaves, gradients: Any, parameters: Any) -> RoutingPlan:
        # The routing plan of these leaves; with cache=False a parameter that
        # changes group moves its state there, replacing the groups' state trees.
        router = self._router
        replacements = router.replacements
        try:
            return router.plan_for(leaves, gradients, parameters, self.batch_small)
        finally:
            if router.replacements != replacements:
                self._show_new_states()

    # -- learning rates and the step ---------------------------------------------------
    @property
    def learning_rate(self) -> mx.array:
        """Group 0's learning rate, exactly as MLX's ``MultiOptimizer`` returns it.

        Kept for compatibility: it says nothing of the other groups. Read
        :attr:`learning_rates` for every group's. Setting it sets every
        group's learning rate, as in MLX.
        """
        return self.optimizers[0].learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: float | mx.array) -> None:
        for optimizer in self.optimizers:
            optimizer.learning_rate = learning_rate
        _evaluate_learning_rates(self.optimizers)

    @property
    def learning_rates(self) -> dict[str, float | None]:
        """``{label: current learning rate}`` (scheduled values included; None if none).

        Assign a dict ``{label: value}`` to change some groups' rates.

        Example:
            >>> import mlx.optimizers as optim
            >>> MultiOptimizer([optim.SGD(0.5), optim.Adam(0.25)], ["ndim == 2"]).learning_rates
            {'sgd': 0.5, 'adam': 0.25}
        """
        return learning_rates_of(self.optimizers, self.labels)

    @learning_rates.setter
    def learning_rates(self, rates: dict[str, float]) -> None:
        set_learning_rates(self.optimizers, self.labels, rates)
        _evaluate_learning_rates(self.optimizers)

    @property
    def step(self) -> mx.array:
        """Group 0's step count (every group's advances on every update, as in MLX).

        MLX's ``MultiOptimizer.step`` raises ``KeyError``.
        """
        return self.optimizers[0].step

    # -- compile=True ------------------------------------------------------------------
    @property
    def compile(self) -> bool:
        """Whether eager updates run as one compiled function (see ``compile=``).

        Example:
            >>> import mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.1)]); opt.compile = True; opt.compile
            True
        """
        return self._compile

    @compile.setter
    def compile(self, compile: bool) -> None:
        check_flag(compile, "MultiOptimizer.compile", "compile")
        self._compile = compile

    @property
    def compilations(self) -> int:
        """How many update functions ``compile=True`` compiled (one per structure and variant).

        Example:
            >>> import mlx.optimizers as optim
            >>> MultiOptimizer([optim.SGD(0.1)], compile=True).compilations
            0
        """
        return self._compiled.compilations

    # -- metrics -----------------------------------------------------------------------
    @property
    def metrics_every(self) -> int | None:
        """Record metrics every this many steps (steps 1, 1 + k, ...); None: off.

        Example:
            >>> import mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.1)]); opt.metrics_every = 5; opt.metrics_every
            5
        """
        return self._recorder.every

    @metrics_every.setter
    def metrics_every(self, every: int | None) -> None:
        if self._recorder.set_every(every):
            self._metrics_changes += 1
            self._show_metrics()

    @property
    def per_parameter(self) -> bool:
        """Whether recorded steps also record every parameter's metrics (see ``per_parameter=``).

        Example:
            >>> import mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.1)], metrics_every=10); opt.per_parameter = True
            >>> opt.per_parameter
            True
        """
        return self._recorder.per_parameter

    @per_parameter.setter
    def per_parameter(self, per_parameter: bool) -> None:
        with self._update_lock:
            if self._recorder.set_per_parameter(per_parameter):
                self._metrics_changes += 1
                self._show_metrics()

    def _show_metrics(self) -> None:
        # A compiled step keys its traces on the state it captured: with or
        # without the metric arrays are two variants, both kept by MLX.
        recorder = self._recorder
        if recorder.shown:
            plan = self._router.plan
            recorder.reserve(len(self.optimizers), self.optimizers[0].state["step"].dtype,
                             None if plan is None else len(plan.paths))
        self._container.show("metrics", recorder.arrays if recorder.shown else None)

    @property
    def metrics(self) -> dict[str, dict[str, float]] | None:
        """The last recorded step's metrics: ``{label: {...}, "total": {...}}``, or None.

        Per group: ``update_norm``, ``grad_norm``, ``param_norm``,
        ``update_ratio`` (update norm / parameter norm) and ``learning_rate``
        (NaN when the optimizer has none); ``"total"`` holds the norms over
        all groups. Python floats, computed on first read.

        Example:
            >>> import mlx.optimizers as optim
            >>> MultiOptimizer([optim.SGD(0.1)], metrics_every=10).metrics is None
            True
        """
        return self._recorder.read(self.labels)

    @property
    def metrics_step(self) -> int | None:
        """The step :attr:`metrics` belong to (None before any recorded step)."""
        return self._recorder.step(self.labels)

    @property
    def parameter_metrics(self) -> ParameterMetrics | None:
        """Every parameter's metrics at the last recorded step (``per_parameter=True``), or None.

        A :class:`~multiopt_lab._src.optimizer.parameter_metrics.ParameterMetrics`:
        a mapping ``{path: {"group": label, "update_norm": ..., "grad_norm":
        ..., "param_norm": ..., "update_ratio": ...}}`` with the whole table
        as ``values`` (one row per path) and ``to_frame()``. The parameter
        norm is the norm before the step, and ``update_ratio`` is the update
        norm divided by it, as for the groups; a group's squared norms are
        the sums of its parameters' squared norms. Computed on first read.

        Example:
            >>> import mlx.core as mx, mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.5)], metrics_every=1, per_parameter=True)
            >>> _ = opt.apply_gradients({"w": mx.array([2.0])}, {"w": mx.array([4.0])})
            >>> opt.parameter_metrics["w"]
            {'group': 'sgd', 'update_norm': 1.0, 'grad_norm': 2.0, 'param_norm': 4.0, 'update_ratio': 0.25}
        """
        return self._recorder.read_parameters(self.labels)

    @property
    def nonfinite_groups(self) -> dict[str, tuple[str, ...]]:
        """Groups whose gradient or update was not finite at the last recorded step.

        Example:
            >>> import mlx.optimizers as optim
            >>> MultiOptimizer([optim.SGD(0.1)]).nonfinite_groups
            {}
        """
        return nonfinite_groups(self.metrics)

    # -- skip_nonfinite ----------------------------------------------------------------
    @property
    def skip_nonfinite(self) -> bool:
        """Whether a step with a NaN/inf gradient or update is skipped (set at construction)."""
        return self._nonfinite is not None

    @property
    def skipped_steps(self) -> int:
        """Steps skipped because a gradient or update was not finite (0 when the option is off).

        Example:
            >>> import mlx.optimizers as optim
            >>> MultiOptimizer([optim.SGD(0.1)], skip_nonfinite=True).skipped_steps
            0
        """
        return 0 if self._nonfinite is None else self._nonfinite.skipped_steps

    @property
    def skipped_groups(self) -> tuple[str, ...]:
        """Labels of the groups whose gradient or update was not finite at the last step
        (with ``skip_nonfinite``; empty otherwise). The step was skipped when this is not empty.

        Example:
            >>> import mlx.optimizers as optim
            >>> MultiOptimizer([optim.SGD(0.1)], skip_nonfinite=True).skipped_groups
            ()
        """
        if self._nonfinite is None:
            return ()
        return tuple(self.labels[i] for i in self._nonfinite.nonfinite_indices())

    def _report_findings(self) -> None:
        # The first update of a routing: say once what is wrong with it.
        self._findings_version = self._router.version
        last = self._router.last_assignment
        if last is not None:
            warn_once(last.diagnostics.findings, self.reported_findings)

    # -- assignments and repartitioning ------------------------------------------------
    def assign(self, parameters: Any) -> Assignment:
        """The assignment of ``parameters`` (a tree, a table or a model) to the groups.

        Example:
            >>> import mlx.core as mx, mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
            >>> opt.assign({"w": mx.zeros((2, 2))}).labels
            {'w': 'sgd'}
        """
        return self._router.assign(parameters)

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
            >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
            >>> opt.last_assignment is None
            True
            >>> opt.init({"w": mx.zeros((2, 2))}); opt.last_assignment.labels
            {'w': 'sgd'}
        """
        return self._router.last_assignment

    def _repr_html_(self) -> str | None:
        return html_for("optimizer", self)

    def repartition(self, filters: Sequence[Any], parameters: Any,
                    labels: Sequence[str] | None = None,
                    optimizers: Sequence[optim.Optimizer] | None = None) -> list[Move]:
        """Switch to new rules between two steps; return what moved.

        A parameter that changes optimizer leaves its state behind (it is
        dropped) and starts fresh in its new group; every other parameter
        keeps its state dict untouched. The step counters stay. On any error
        (a rule that does not parse or fails on a parameter, a wrong count)
        nothing changes. Any thread may call it (it waits for an update in
        progress); a step compiled with ``inputs=state, outputs=state``
        follows the new routing from its next call, as it is.

        The rules in force may fail on some parameters (``shape[1] == 8`` once
        the biases are unfrozen): updates then fail, and this is how to
        replace them. A parameter they fail on keeps the state of the one
        group that holds state for it, as if that were its old group; one
        without state starts fresh; one whose state sits in several groups
        cannot be attributed, and starts fresh. A ``RuntimeWarning`` says
        which parameters and what happened to their state.

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
            >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
            >>> opt.repartition(["ndim == 2"], {"w": mx.zeros((2, 2))})
            []
        """
        check_parameters(parameters, "repartition()")
        with self._update_lock:
            change = self._router.prepare(filters, parameters, labels, optimizers)
            # MLX binds a lazy array to the stream of the thread that made it: the
            # state made here must be computed here, for any thread to train on it.
            _evaluate_here(change.fresh)
            # Everything is computed: commit in one go, into the dicts a compiled
            # step holds (it traces again at its next call).
            self._router.commit(change)
            self._recorder.clear()
            self._show_metrics()
            self._show_new_states()
        if change.note:
            warnings.warn(f"repartition: {change.note}", RuntimeWarning, stacklevel=2)
        return change.moves

    def request_repartition(self, filters: Sequence[Any],
                            labels: Sequence[str] | None = None) -> PendingRepartition:
        """Ask for a repartition at the start of the next update (thread-safe).

        The filters are parsed now (a bad rule raises here); they are applied
        to the parameters at the next :meth:`update` or :meth:`between_steps`,
        whole or not at all. A later request replaces one not yet applied.
        A step compiled with ``mx.compile`` replays without running
        ``update`` in Python: when this optimizer was last stepped that way and
        nothing calls :meth:`between_steps` (``compile_step`` and the mlx-lm
        callback do), a warning says so; the request waits, it is not dropped.

        Example:
            >>> import mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
            >>> opt.request_repartition(["ndim == 1"]).done
            False
        """
        rules = check_filters(filters, self.optimizers, self.cache)
        checked = None if labels is None else group_labels(labels, self.optimizers)
        pending = self._requests.submit(PendingRepartition(rules, checked))
        if self._driven_by == "traced":
            warnings.warn(
                "this optimizer trains inside a step compiled with mx.compile, whose replays do "
                "not run its Python code, and nothing calls optimizer.between_steps(model) "
                "between them: the repartition waits until something does (multiopt_lab's "
                "compile_step and mlx-lm callback do it for you), or until an eager update",
                stacklevel=2)
        return pending

    def between_steps(self, parameters: Any, *, record_metrics: bool | None = None) -> None:
        """Get ready for the next call of a compiled step: call it between two steps.

        A step compiled with ``mx.compile`` replays its trace without running
        this optimizer's Python code, so what ``update`` would do first is
        done here: a requested repartition is applied (whole or not at all),
        the state is initialised for ``parameters`` if the routing changed,
        and ``record_metrics`` chooses whether the next traced update records
        metrics (None: every traced update does). The two variants are two
        states (with and without the metric arrays), so the compiled step
        keeps one trace of each and metrics cost nothing on the other steps.
        :func:`multiopt_lab.compile_step` calls it before every step, the
        mlx-lm callback at every report (or before every step, through its
        ``iterate_batches``).

        Args:
            parameters: The model (or its trainable parameters) the step trains.
            record_metrics (bool, optional): Whether the next traced update
                records metrics. Default: ``None`` (every traced update does).

        Example:
            >>> import mlx.core as mx, mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
            >>> pending = opt.request_repartition(["ndim == 1"])
            >>> opt.between_steps({"w": mx.zeros((2, 2))}); pending.moves
            [Move(path='w', source='sgd', target='adam')]
        """
        check_parameters(parameters, "between_steps()")
        with self._update_lock:
            self._driven_by = "between_steps"
            self._follow_replaced_states()
            # Called before every step: build the parameter tree only when it is needed.
            if self._requests.pending is not None:
                self.apply_pending_repartition(parameters)
            if self._router.plan is None:
                self.init(parameters)
            self._recorder.traced = True if record_metrics is None else bool(record_metrics)
            self._show_metrics()

    @property
    def has_pending_repartition(self) -> bool:
        """True when :meth:`request_repartition` waits for the next update.

        Example:
            >>> import mlx.optimizers as optim
            >>> MultiOptimizer([optim.SGD(0.1)]).has_pending_repartition
            False
        """
        return self._requests.pending is not None

    def apply_pending_repartition(self, parameters: Any) -> list[Move] | None:
        """Apply a requested repartition now (``update`` does it by itself).

        Returns the moves, or None when nothing was pending or it failed (the
        error is on the request and in a warning; the optimizer is unchanged).

        Example:
            >>> import mlx.core as mx, mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
            >>> pending = opt.request_repartition(["ndim == 1"])
            >>> opt.apply_pending_repartition({"w": mx.zeros((2, 2))})
            [Move(path='w', source='sgd', target='adam')]
        """
        with self._update_lock:
            pending = self._requests.take()
            if pending is None:
                return None
            try:
                moves = self.repartition(pending.filters, parameters, pending.labels)
            except Exception as error:  # reported, never half applied
                pending.finish(None, error)
                warnings.warn(f"requested repartition not applied: {error}", stacklevel=3)
                return None
            pending.finish(moves, None)
            return moves


def _evaluate_learning_rates(optimizers: Sequence[Any]) -> None:
    # Made on this thread: evaluated, the training thread can use them.
    rates = [o.state.get("learning_rate") for o in optimizers]
    _evaluate_here([r for r in rates if isinstance(r, mx.array)])


def _arrays_made_by(action, tree: Any) -> list:
    """Run ``action``; return the arrays in ``tree`` afterwards that were not there before."""
    before = {id(a) for _, a in tree_flatten(tree)}  # type: ignore[str-unpack]  # tree_flatten gives a list here (mlx types it list | dict)
    action()
    return [a for _, a in tree_flatten(tree) if id(a) not in before]  # type: ignore[str-unpack]  # tree_flatten gives a list here (mlx types it list | dict)


def _evaluate_here(arrays: list) -> None:
    # MLX binds a lazy array to the stream of the thread that made it; computed
    # now, any thread can use it. Inside mx.compile (a repartition applied while
    # tracing) placeholders cannot be evaluated: the trace computes them.
    try:
        mx.eval(arrays)
    except ValueError:
        pass


def _read_only(name: str, how: str) -> None:
    raise AttributeError(
        f"MultiOptimizer.{name} is read-only: the routing and each group's state follow from "
        f"it, so it changes only through optimizer.repartition(filters, model, ...) with "
        f"{how}, which moves the state of what moves (or request_repartition from another "
        "thread)")


def _trainable(parameters: Any) -> Any:
    trainable = getattr(parameters, "trainable_parameters", None)
    return trainable() if callable(trainable) else parameters


def _is_tracing(step: Any) -> bool:
    """True inside ``mx.compile`` (or another transformation) tracing this optimizer.

    The step counter is a traced input there, and evaluating one raises; in
    eager mode it is normally evaluated already, so this costs nothing.
    """
    if step is None:
        return False
    try:
        mx.eval(step)
    except ValueError:
        return True
    return False


def _next_step(optimizers: Sequence[Any]) -> int:
    # The step this update makes (1-based). Evaluated already after the
    # previous step's mx.eval: no extra work.
    step = optimizers[0].state.get("step")
    return 1 if step is None else int(step.item()) + 1


def _keys(state: Any) -> list:
    return list(state.keys()) if isinstance(state, dict) else []
