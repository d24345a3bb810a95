"""A drop-in for ``mlx.optimizers.MultiOptimizer``: same results, cached routing, named groups.

Example:
    >>> import mlx.nn as nn, mlx.optimizers as optim
    >>> model = nn.Linear(4, 2)
    >>> opt = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"])
    >>> opt.labels, opt.assign(model.parameters()).labels["bias"]
    (('muon', 'adamw'), 'adamw')
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from multiopt_lab.optimizer.compiled_update import CompiledUpdate
from multiopt_lab.optimizer.groups import check_filters, check_labels, check_optimizers
from multiopt_lab.optimizer.metrics import MetricsReader
from multiopt_lab.optimizer.nonfinite import NonfiniteGuard, NonfiniteMixin
from multiopt_lab.optimizer.recorder import MetricsMixin, check_every
from multiopt_lab.optimizer.rates import LearningRatesMixin
from multiopt_lab.optimizer.routing import RoutingMixin
from multiopt_lab.optimizer.update import UpdateMixin
from multiopt_lab.optimizer.plan import flatten_with_parameters, rebuild_tree

__all__ = ["MultiOptimizer"]


class MultiOptimizer(UpdateMixin, RoutingMixin, MetricsMixin, LearningRatesMixin,
                     NonfiniteMixin, optim.MultiOptimizer):
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
        optimizers = check_optimizers(optimizers)
        if not isinstance(compile, bool):
            raise TypeError(f"expected compile to be True or False, found {compile!r}")
        rules = check_filters(filters, optimizers, cache)
        labels = check_labels(labels, optimizers)
        every = check_every(metrics_every)
        optim.Optimizer.__init__(self)
        self._state = {}
        self.optimizers = optimizers
        self.filters = rules
        self.labels = labels
        self.cache = bool(cache)
        #: Update small parameters of elementwise optimizers in one call per
        #: bucket (same bits, fewer kernels; see ``optimizer.batching``).
        self.batch_small = True
        self._metrics_every = every
        self._nonfinite = NonfiniteGuard(len(optimizers)) if skip_nonfinite else None
        self._metric_arrays: dict[str, Any] = {}
        self._metrics_reader = MetricsReader()
        self._plan = None
        self._trace_recording: bool | None = None
        self._metrics_unverified = False
        self.version = 0
        self._pending = None
        self._pending_lock = threading.Lock()
        # Held for a whole update and a whole repartition, so the live rule
        # editor (on another thread) never swaps the routing mid-update.
        self._update_lock = threading.RLock()
        #: Updates applied so far (a plain int: other threads may read it
        #: without touching MLX arrays).
        self.update_count = 0
        self._compile = compile
        self._compiled = CompiledUpdate(self)

    # -- MLX's API ---------------------------------------------------------------
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
        self._invalidate()
        model = parameters if isinstance(parameters, nn.Module) else None
        if model is not None:
            parameters = model.trainable_parameters()
        leaves = flatten_with_parameters(parameters, parameters)
        self._plan = self._build_plan(leaves, parameters, model)

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
            return self._apply_gradients_locked(gradients, parameters)

    def _apply_gradients_locked(self, gradients: dict, parameters: dict) -> dict:
        self._apply_pending(parameters)
        leaves = flatten_with_parameters(gradients, parameters)
        # optimizer.update(model, gradients) hands the model: rules may read module kinds.
        model = parameters if isinstance(parameters, nn.Module) else None
        plan = self._plan_for(leaves, gradients, model)
        guard = self._nonfinite
        before = None if guard is None else guard.before(self.optimizers)
        tracing = _is_tracing(self.optimizers[0].state.get("step"))
        recording = self._records_this_step(tracing)
        # Under an outer mx.compile the whole step is one graph already: no nesting.
        compiled = self._compiled.apply(plan, leaves, gradients, recording) \
            if self._compile and not tracing else None
        if compiled is not None:
            new, metrics = compiled
            self._metric_arrays.update(metrics)
            if guard is not None:
                new = guard.after(self.optimizers, before, leaves.gradients, leaves.parameters,
                                  new, plan.indices)
            return rebuild_tree(gradients, new)
        # Under mx.compile the fused per-parameter kernels beat concatenation.
        new, pieces = self._update_leaves(plan, leaves, gradients, parameters,
                                          batched=self.batch_small and not tracing,
                                          recording=recording)
        if recording:
            self._metric_arrays.update(self._metric_values(pieces))
            # A plain mx.compile may not have captured the metrics: check later.
            self._metrics_unverified = tracing and self._trace_recording is None
        if guard is not None:
            new = guard.after(self.optimizers, before, leaves.gradients, leaves.parameters, new,
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
        self._verify_traced_metrics()
        state = {"states": [o.state for o in self.optimizers]}
        if self._metrics_every is not None:
            state["metrics"] = self._metric_arrays
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
        if self._nonfinite is not None:
            self._nonfinite.load(state.get("nonfinite"))  # validates before changing anything
        for optimizer, sub in zip(self.optimizers, states):
            optimizer.state = sub
        metrics = state.get("metrics")
        self._metric_arrays.clear()
        if isinstance(metrics, dict):
            self._metric_arrays.update(metrics)
        self._invalidate()


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


def _keys(state: Any) -> list:
    return list(state.keys()) if isinstance(state, dict) else []

