"""The optimizer update alone, compiled: for eager training loops (``compile=True``).

Most MLX training loops never wrap their step in ``mx.compile``: every
``optimizer.update`` then launches a dozen small kernels per parameter from
Python. :class:`CompiledUpdate` compiles the update of all groups into one
function per routing plan, with the sub-optimizers' states as the compiled
function's inputs and outputs (MLX's ``inputs=state, outputs=state``
pattern), so a step replays one fused graph.

It compiles again when it must, and only then: a new plan (a new tree
structure, ``state`` set or loaded, ``init``, a repartition, a change of
``metrics_every``), or a change of what a trace captures as a constant: a
Python-number hyperparameter of a sub-optimizer (``momentum``,
``weight_decay``, a learning rate stored as a float), or the shape or dtype of
an array in a sub-optimizer's top-level state. Learning rates and steps are
arrays in the state, so schedules and ``optimizer.learning_rate = x`` need
no new compilation.
"""

from __future__ import annotations

import warnings
from numbers import Number
from typing import Any
from collections.abc import Callable, Sequence

import mlx.core as mx

from multiopt_lab._src.mlx_internals import own_attributes, schedules, state_dict
from multiopt_lab._src.optimizer.metrics import metrics_of_update
from multiopt_lab._src.optimizer.plan import RoutingPlan
from multiopt_lab._src.optimizer.leaves import FlatLeaves
from multiopt_lab._src.trees.rebuild import rebuild_tree
from multiopt_lab._src.optimizer.update import update_groups

__all__ = ["CompiledUpdate", "captured_constants"]

_SKIPPED = object()
#: More compilations than this for one plan means a constant changes on every
#: step (a schedule kept in a Python attribute): eager is then faster.
MAX_COMPILATIONS_PER_PLAN = 8


def _frozen(value: Any) -> Any:
    """A hashable copy of a Python constant a trace would capture, or ``_SKIPPED``."""
    if value is None or isinstance(value, (Number, str)):
        return value
    if isinstance(value, (list, tuple)) and all(
            v is None or isinstance(v, (Number, str)) for v in value):
        return (type(value).__name__, *value)
    return _SKIPPED


def captured_constants(optimizer: Any) -> tuple:
    """What a trace of ``optimizer``'s update bakes in: change it and the trace is stale.

    Python-number (and number-list) attributes, the scheduled names (and
    which function schedules each), and for the top-level entries of its
    state the value of a non-array or the shape and dtype of an array. A
    nested ``MultiOptimizer`` is described by its own optimizers (and its
    ``version``), not by its counters.
    """
    subs = getattr(optimizer, "optimizers", None)
    if isinstance(subs, (list, tuple)):
        return (type(optimizer), getattr(optimizer, "version", None),
                tuple(captured_constants(o) for o in subs))
    found: list = [type(optimizer),
                   ("schedules", tuple((k, id(f)) for k, f in schedules(optimizer).items()))]
    for name, value in own_attributes(optimizer).items():
        if (frozen := _frozen(value)) is not _SKIPPED:
            found.append((name, frozen))
    state = state_dict(optimizer)
    for name, value in (state.items() if isinstance(state, dict) else ()):
        if isinstance(value, mx.array):
            found.append((name, value.shape, value.dtype))
        elif (frozen := _frozen(value)) is not _SKIPPED:
            found.append((name, "value", frozen))
    return tuple(found)


class CompiledUpdate:
    """Compiled update functions of one ``MultiOptimizer``, kept while they are valid.

    Each function runs :func:`~multiopt_lab._src.optimizer.update.update_groups`
    (and, when recording, the metrics, per parameter too when asked) for one plan, with the groups' states
    as its compiled inputs and outputs.

    Attributes:
        compilations (int): How many update functions were compiled so far.
    """

    def __init__(self) -> None:
        self.compilations = 0
        self._key: tuple | None = None
        self._functions: dict[tuple[bool, bool], Callable] = {}
        self._failed = False
        self._plan_key: tuple | None = None
        self._plan_compilations = 0

    def apply(self, plan: RoutingPlan, leaves: FlatLeaves, gradients: Any,
              optimizers: Sequence[Any], version: int,
              recording: bool, per_parameter: bool = False) -> tuple[list, dict] | None:
        """``(new parameters in flatten order, metric arrays)``; None: run this step eagerly.

        ``version`` is the routing's (a new one compiles again). The first
        step of a plan whose groups run their own ``apply_gradients`` runs
        eagerly (they create their state on it), and so does every step of a
        plan whose update could not be traced (a warning says why).
        """
        key = (version, id(plan), tuple(captured_constants(o) for o in optimizers))
        if key != self._key:
            self._functions.clear()
            self._key, self._failed = key, False
            if key[:2] != self._plan_key:
                self._plan_key, self._plan_compilations = key[:2], 0
            elif self._plan_compilations >= MAX_COMPILATIONS_PER_PLAN:
                self._give_up(f"a Python constant of a sub-optimizer changed "
                              f"{self._plan_compilations} times for the same parameters", 5)
            if any(states is None for states in plan.states):
                return None
        if self._failed:
            return None
        variant = (recording, per_parameter)
        function = self._functions.get(variant)
        if function is not None:
            return function(leaves.gradients, leaves.parameters)
        function = self._compile(plan, gradients, optimizers, recording, per_parameter)
        result = self._first_call(function, plan, leaves, optimizers)
        if result is not None:
            self._functions[variant] = function
        return result

    def _compile(self, plan: RoutingPlan, gradients: Any, optimizers: Sequence[Any],
                 recording: bool, per_parameter: bool) -> Callable:
        own_code = any(states is None for states in plan.states)
        template = gradients if own_code else None
        optimizers = list(optimizers)

        def update(grads: list, params: list) -> tuple[list, dict]:
            leaves = FlatLeaves(plan.paths, grads, params)
            grad_tree = rebuild_tree(template, grads) if own_code else None
            param_tree = rebuild_tree(template, params) if own_code else None
            new, pieces = update_groups(optimizers, plan, leaves, grad_tree, param_tree,
                                        batched=False, recording=recording,
                                        per_parameter=per_parameter)
            return new, (metrics_of_update(pieces, optimizers, per_parameter) if recording else {})

        state = [o.state for o in optimizers]
        self.compilations += 1
        self._plan_compilations += 1
        return mx.compile(update, inputs=state, outputs=state)

    def _first_call(self, function: Callable, plan: RoutingPlan, leaves: FlatLeaves,
                    optimizers: Sequence[Any]) -> tuple[list, dict] | None:
        # Tracing writes placeholders into the state dicts; should it fail,
        # put every dict back as it was and let this plan run eagerly.
        dicts = [o.state for o in optimizers]
        dicts += [s for states in plan.states if states is not None for s in states]
        saved = [(d, dict(d)) for d in dicts]
        try:
            return function(leaves.gradients, leaves.parameters)
        except Exception as error:  # any tracing failure: eager is still correct
            for d, copy in saved:
                d.clear()
                d.update(copy)
            self._give_up(f"{type(error).__name__}: {error}. A learning-rate schedule must use "
                          "mlx operations on the step (no Python branches on its value)", 6)
            return None

    def _give_up(self, reason: str, stacklevel: int) -> None:
        # stacklevel: the user's line that called optimizer.update.
        self._failed = True
        warnings.warn(f"compile=True could not compile this optimizer update ({reason}); it runs "
                      "eagerly until the parameters, rules or state change", stacklevel=stacklevel)
