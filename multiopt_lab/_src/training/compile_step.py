"""``mx.compile`` for a training step, with the optimizer's step boundary and cheap metrics.

MLX's own pattern, ``mx.compile(step, inputs=state, outputs=state)`` with
``state = [model.state, optimizer.state]``, already follows every change of
a :class:`~multiopt_lab.MultiOptimizer` (its state
is one dict, changed in place; see :mod:`multiopt_lab._src.optimizer.state`).
:func:`compile_step` adds what needs Python between two calls, which a
replayed trace never runs: it calls ``optimizer.between_steps`` before every
step (a repartition requested from another thread lands there, whole), and
records metrics only on steps 1, 1 + k, ... (the other steps replay a trace
without them, so they cost nothing).
"""

from __future__ import annotations

import contextlib
from typing import Any
from collections.abc import Callable, Sequence

import mlx.core as mx

from multiopt_lab._src.arguments import check_model, check_optimizer, checked, function, kind
from multiopt_lab._src.optimizer.metrics import is_metrics_step

__all__ = ["compile_step", "CompiledStep"]

#: What a step, a model and an optimizer must be (compile_step and CompiledStep).
_CHECKS = dict(step=function("a function (the training step, which calls optimizer.update)"),
               model=check_model, optimizer=check_optimizer,
               state=kind((list, tuple), "a list of more state to capture"))


class CompiledStep:
    """The callable :func:`compile_step` returns; see there.

    Attributes:
        traces (int): How many times the step was traced (once per routing
            and metrics variant; MLX keeps every trace).

    Example:
        >>> import mlx.core as mx, mlx.nn as nn, mlx.optimizers as optim
        >>> model, opt = nn.Linear(2, 1), optim.SGD(0.1, momentum=0.9)
        >>> opt.init(model.trainable_parameters())  # a state that grows while tracing traces twice
        >>> grad_fn = nn.value_and_grad(model, lambda m: m(mx.ones((1, 2))).sum())
        >>> step = CompiledStep(lambda: opt.update(model, grad_fn(model)[1]), model, opt)
        >>> for _ in range(3):
        ...     step()
        >>> step.traces
        1
    """

    @checked(**_CHECKS)
    def __init__(self, step: Callable, model: Any, optimizer: Any, state: Sequence[Any] = ()):
        self.step, self.model, self.optimizer = step, model, optimizer
        self.extra_state = list(state)
        self.traces = 0
        self._next_step: int | None = None
        self._version: int | None = None
        captured = [model.state, optimizer.state, *self.extra_state]
        counts = self  # the trace runs this Python once; replays run none of it

        def traced(*args, **kwargs):
            counts.traces += 1
            return step(*args, **kwargs)

        self._compiled = mx.compile(traced, inputs=captured, outputs=captured)

    def __call__(self, *args, **kwargs):
        optimizer = self.optimizer
        lock = getattr(optimizer, "update_lock", None)
        # One call is one update: a repartition from another thread lands
        # before or after it, whole.
        with lock if lock is not None else contextlib.nullcontext():
            if hasattr(optimizer, "update_count"):
                optimizer.update_count += 1
            record = self._records_next(optimizer)
            between_steps = getattr(optimizer, "between_steps", None)
            if between_steps is not None:
                between_steps(self.model, record_metrics=record)
            result = self._compiled(*args, **kwargs)
            if self._next_step is not None:
                self._next_step += 1
            return result

    def _records_next(self, optimizer: Any) -> bool | None:
        every = getattr(optimizer, "metrics_every", None)
        if every is None:
            self._next_step = None
            return None
        version = getattr(optimizer, "version", None)
        if self._next_step is None or version != self._version:
            # Read once, and again after a new state, then counted here:
            # reading it every step would wait for the previous step.
            self._next_step = int(optimizer.step.item()) + 1
            self._version = version
        return is_metrics_step(self._next_step, every)


@checked(**_CHECKS)
def compile_step(step: Callable, model: Any, optimizer: Any,
                 state: Sequence[Any] = ()) -> CompiledStep:
    """Compile a training step with ``[model.state, optimizer.state]`` as its state.

    The same as ``mx.compile(step, inputs=s, outputs=s)`` with
    ``s = [model.state, optimizer.state, *state]`` (a repartition, a new
    state or a change of ``metrics_every`` reach it there too), plus, before
    every call, ``optimizer.between_steps``: a repartition requested with
    ``optimizer.request_repartition`` (the rule editor's Apply) is applied
    there, and metrics every k steps are computed on those steps only.

    Args:
        step (callable): The step; it must call ``optimizer.update``.
        model (nn.Module): The model the step trains.
        optimizer (MultiOptimizer): Its optimizer (any MLX optimizer works).
        state (list, optional): More state to carry, e.g. ``[mx.random.state]``.

    Returns:
        CompiledStep: Call it like ``step``.

    Example:
        >>> import mlx.core as mx, mlx.nn as nn, mlx.optimizers as optim
        >>> from multiopt_lab import MultiOptimizer
        >>> model = nn.Linear(3, 2)
        >>> optimizer = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.01)], ["ndim == 2"])
        >>> loss_and_grad = nn.value_and_grad(model, lambda m, x: m(x).sum())
        >>> def train_step(x):
        ...     loss, grads = loss_and_grad(model, x)
        ...     optimizer.update(model, grads)
        ...     return loss
        >>> step = compile_step(train_step, model, optimizer)
        >>> loss = step(mx.ones((1, 3)))
        >>> pending = optimizer.request_repartition(["ndim == 1"])  # e.g. from the editor
        >>> loss = step(mx.ones((1, 3)))   # applied first, then traced for the new routing
        >>> pending.done, step.traces, optimizer.assign(model).labels["bias"]
        (True, 2, 'sgd')
    """
    return CompiledStep(step, model, optimizer, state)
