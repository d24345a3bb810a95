"""A drop-in for ``mlx.optimizers.MultiOptimizer``: same results, cached routing, named groups.

``MultiOptimizer`` holds named parts, each with its own state: a
:class:`~multiopt_lab.optimizer.router.Router` (the groups and the routing
plan), :class:`~multiopt_lab.optimizer.requests.RepartitionRequests` (edits
from another thread), a :class:`~multiopt_lab.optimizer.recorder.MetricsRecorder`,
a :class:`~multiopt_lab.optimizer.nonfinite.NonfiniteGuard` (optional) and a
:class:`~multiopt_lab.optimizer.compiled_update.CompiledUpdate`. One update is
:meth:`MultiOptimizer.apply_gradients`, below, top to bottom.

Example:
    >>> import mlx.nn as nn, mlx.optimizers as optim
    >>> model = nn.Linear(4, 2)
    >>> opt = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"])
    >>> opt.labels, opt.assign(model.parameters()).labels["bias"]
    (('muon', 'adamw'), 'adamw')
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Sequence

import mlx.core as mx
import mlx.optimizers as optim

from multiopt_lab.display import html_for
from multiopt_lab.optimizer.compiled_update import CompiledUpdate
from multiopt_lab.optimizer.groups import check_filters, group_labels
from multiopt_lab.optimizer.metrics import metrics_of_update, nonfinite_groups
from multiopt_lab.optimizer.nonfinite import NonfiniteGuard
from multiopt_lab.optimizer.trees import flatten_with_parameters, rebuild_tree
from multiopt_lab.optimizer.rates import learning_rates_of, set_learning_rates
from multiopt_lab.optimizer.recorder import MetricsRecorder
from multiopt_lab.optimizer.repartition import Move, existing_entry
from multiopt_lab.optimizer.requests import PendingRepartition, RepartitionRequests
from multiopt_lab.optimizer.router import Router
from multiopt_lab.optimizer.update import update_groups
from multiopt_lab.partition.assignment import Assignment

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
        compile (bool, optional): Compile the update of all groups into one
            function per tree structure (an eager loop's update then runs
            in about a third of the time); results then equal the eager
            ones within float rounding, not to the last bit. Ignored under
            an outer ``mx.compile``. Default: ``False``.
        skip_nonfinite (bool, optional): When a gradient or an update of any
            group holds a NaN or an inf, leave the parameters and every
            group's state as they were (lazily, also under ``mx.compile``);
            see ``skipped_steps`` and ``skipped_groups``. Default: ``False``.

    Example:
        >>> import mlx.optimizers as optim
        >>> MultiOptimizer([optim.AdamW(1e-3), optim.AdamW(1e-2)], ["ndim == 1"]).labels
        ('adamw', 'adamw_2')
    """

    def __init__(self, optimizers: Sequence[optim.Optimizer], filters: Sequence[Any] = (), *,
                 labels: Sequence[str] | None = None, cache: bool = True,
                 metrics_every: int | None = None, compile: bool = False,
                 skip_nonfinite: bool = False):
        if not isinstance(compile, bool):
            raise TypeError(f"expected compile to be True or False, found {compile!r}")
        router = Router(optimizers, filters, labels, cache)
        recorder = MetricsRecorder(metrics_every)
        optim.Optimizer.__init__(self)
        self._state = {}
        self._router = router
        self._requests = RepartitionRequests()
        self._recorder = recorder
        self._nonfinite = NonfiniteGuard(len(router.optimizers)) if skip_nonfinite else None
        self._compiled = CompiledUpdate()
        self._compile = compile
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

    # -- the groups (read-only: change them with repartition) ---------------------------
    @property
    def optimizers(self) -> tuple[optim.Optimizer, ...]:
        """The optimizer of each group, in order (read-only: see :meth:`repartition`)."""
        return self._router.optimizers

    @optimizers.setter
    def optimizers(self, _value: Any) -> None:
        _read_only("optimizers", "optimizers=[...]")

    @property
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
    def _plan(self):
        # The plan of the last routed structure (None until the next update
        # after a change); the checkpoint checks read what it routed.
        return self._router.plan

    # -- MLX's API ---------------------------------------------------------------------
    def init(self, parameters: dict) -> None:
        """Initialise every group's state for ``parameters`` (optional, as in MLX).

        Example:
            >>> import mlx.nn as nn, mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.1, momentum=0.9)])
            >>> opt.init(nn.Linear(2, 2).parameters()); sorted(opt.state["states"][0])
            ['bias', 'learning_rate', 'step', 'weight']
        """
        with self._update_lock:
            self._router.invalidate()
            leaves = flatten_with_parameters(parameters, parameters)
            self._router.plan_for(leaves, parameters, parameters, self.batch_small)
            self._initialized = True

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
                self.apply_pending_repartition(_trainable(parameters))
            # 2. Route: the cached plan for this structure, or a new one.
            leaves = flatten_with_parameters(gradients, parameters)
            optimizers = self.optimizers
            tracing = _is_tracing(optimizers[0].state.get("step"))
            plan = self._router.plan_for(leaves, gradients, parameters, self.batch_small)
            # MLX's flag: "my state fits the parameters". An outer MultiOptimizer
            # holding this one checks it, and would otherwise re-plan every step.
            self._initialized = True
            recording = self._recorder.records(lambda: _next_step(optimizers), tracing)
            guard = self._nonfinite
            before = None if guard is None else guard.before(optimizers)
            # 3. Step every group: one compiled function, or group by group. Under
            #    an outer mx.compile the whole step is one graph already: no nesting.
            compiled = None
            if self._compile and not tracing:
                compiled = self._compiled.apply(plan, leaves, gradients, optimizers,
                                                self._router.version, recording)
            if compiled is not None:
                new, metrics = compiled
            else:
                # Under mx.compile the fused per-parameter kernels beat concatenation.
                new, pieces = update_groups(optimizers, plan, leaves, gradients, parameters,
                                            batched=self.batch_small and not tracing,
                                            recording=recording)
                metrics = metrics_of_update(pieces, optimizers) if recording else None
            # 4. Metrics (lazy arrays, computed with the update), then the NaN/inf guard.
            if recording:
                self._recorder.store(metrics, tracing)
            if guard is not None:
                new = guard.after(optimizers, before, leaves.gradients, leaves.parameters, new,
                                  plan.indices)
            return rebuild_tree(gradients, new)

    @property
    def state(self) -> dict:
        """``{"states": [each optimizer's state]}``, MLX's layout.

        While metrics are on (``metrics_every`` set) it also holds
        ``"metrics"``: the last recorded metric arrays, so that evaluating the
        state computes them and a compiled step carries them out.
        :func:`multiopt_lab.save_state` leaves them out.
        """
        self._recorder.verify()
        state = {"states": [o.state for o in self.optimizers]}
        if self._recorder.shown:
            state["metrics"] = self._recorder.arrays
        if self._nonfinite is not None:
            state["nonfinite"] = self._nonfinite.arrays
        return state

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
            if self._nonfinite is not None:
                self._nonfinite.load(state.get("nonfinite"))  # validates before changing anything
            for optimizer, sub in zip(self.optimizers, states):
                optimizer.state = sub
            metrics = state.get("metrics")
            self._recorder.clear()
            if isinstance(metrics, dict):
                self._recorder.arrays.update(metrics)
            self._router.invalidate()

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
        if not isinstance(compile, bool):
            raise TypeError(f"expected compile to be True or False, found {compile!r}")
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
            >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
            >>> opt.repartition(["ndim == 2"], {"w": mx.zeros((2, 2))})
            []
        """
        with self._update_lock:
            change = self._router.prepare(filters, parameters, labels, optimizers)
            # Everything is computed: commit in one go.
            self._router.commit(change)
            self._recorder.clear()
            return change.moves

    def request_repartition(self, filters: Sequence[Any],
                            labels: Sequence[str] | None = None) -> PendingRepartition:
        """Ask for a repartition at the start of the next update (thread-safe).

        The filters are parsed now (a bad rule raises here); they are applied
        to the parameters at the next :meth:`update`, whole or not at all. A
        later request replaces one not yet applied.

        Example:
            >>> import mlx.optimizers as optim
            >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
            >>> opt.request_repartition(["ndim == 1"]).done
            False
        """
        rules = check_filters(filters, self.optimizers, self.cache)
        checked = None if labels is None else group_labels(labels, self.optimizers)
        return self._requests.submit(PendingRepartition(rules, checked))

    def between_steps(self, parameters: Any, *, record_metrics: bool | None = None) -> None:
        """Get ready for the next call of a compiled step: call it between two steps.

        A step compiled with ``mx.compile`` replays its trace without running
        this optimizer's Python code, so what ``update`` would do first is
        done here: a requested repartition is applied (whole or not at all),
        the state is initialised for ``parameters`` if the routing changed,
        and ``record_metrics`` chooses whether the next traced update records
        metrics (None: every traced update does).
        :func:`multiopt_lab.compile_step` calls it before every step.

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
        with self._update_lock:
            tree = _trainable(parameters)
            if self._requests.pending is not None:
                self.apply_pending_repartition(tree)
            if self._router.plan is None:
                self.init(tree)
            self._recorder.traced = True if record_metrics is None else bool(record_metrics)

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
                _evaluate_fresh_state(self, moves)
            except Exception as error:  # reported, never half applied
                pending.finish(None, error)
                warnings.warn(f"requested repartition not applied: {error}", stacklevel=3)
                return None
            pending.finish(moves, None)
            return moves


def _evaluate_fresh_state(optimizer: Any, moves: list[Move]) -> None:
    # MLX streams belong to threads: state initialised lazily on this (the editor's) thread
    # cannot be evaluated by a training loop on another one ("There is no Stream(cpu, 0) in
    # current thread"), so compute the moved parameters' fresh state here.
    labels = list(optimizer.labels)
    fresh = []
    for move in moves:
        entry = existing_entry(optimizer.optimizers[labels.index(move.target)].state, move.path)
        fresh += [v for v in (entry or {}).values() if isinstance(v, mx.array)]
    mx.eval(fresh)


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
