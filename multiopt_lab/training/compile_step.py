"""``mx.compile`` for a training step that follows the optimizer: re-traced when it must be.

A compiled step replays the graph traced on its first call: a repartition, a
new state or a change of ``metrics_every`` would go unseen. :func:`compile_step`
keeps the compiled function per optimizer ``version`` (bumped by each of
those) and traces again when it changes; it applies a requested repartition
before the step (the update itself never runs Python when replayed); and it
keeps two traces while metrics are on, one that records them and one that
does not, so metrics every k steps cost nothing on the other steps.

Example:
    >>> import mlx.core as mx, mlx.nn as nn, mlx.optimizers as optim
    >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
    >>> model = nn.Linear(3, 1)
    >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.01)], ["ndim == 2"])
    >>> grad_fn = nn.value_and_grad(model, lambda m, x: m(x).sum())
    >>> def step(x):
    ...     loss, grads = grad_fn(model, x)
    ...     opt.update(model, grads)
    ...     return loss
    >>> train_step = compile_step(step, model, opt)
    >>> mx.eval(train_step(mx.ones((2, 3)))); int(opt.step.item())
    1
"""

from __future__ import annotations

import contextlib

from typing import Any, Callable, Sequence

import mlx.core as mx

from multiopt_lab.optimizer.metrics import is_metrics_step

__all__ = ["compile_step", "CompiledStep"]


class CompiledStep:
    """The callable :func:`compile_step` returns; see there.

    Attributes:
        traces (int): How many times a step function was (re)compiled.

    Example:
        >>> step = compile_step(train_step, model, optimizer)   # doctest: +SKIP
        >>> loss = step(x, y); step.traces                        # doctest: +SKIP
        1
    """

    def __init__(self, step: Callable, model: Any, optimizer: Any, state: Sequence[Any] = ()):
        self.step, self.model, self.optimizer = step, model, optimizer
        self.extra_state = list(state)
        self.traces = 0
        self._version: int | None = None
        self._compiled: dict[bool, Callable] = {}
        self._next_step: int | None = None

    def _compiled_for(self, recording: bool) -> Callable:
        version = getattr(self.optimizer, "version", 0)
        if version != self._version:
            self._compiled.clear()
            self._version = version
        found = self._compiled.get(recording)
        if found is None:
            # A fresh closure per trace: mx.compile caches by function id.
            def traced(*args, **kwargs):
                return self.step(*args, **kwargs)

            state = [self.model.state, self.optimizer.state, *self.extra_state]
            found = mx.compile(traced, inputs=state, outputs=state)
            self._compiled[recording] = found
            self.traces += 1
        return found

    def __call__(self, *args, **kwargs):
        # One compiled call is one update: hold the optimizer's update lock so
        # a repartition from another thread lands before or after it, whole.
        lock = getattr(self.optimizer, "_update_lock", None)
        with lock if lock is not None else contextlib.nullcontext():
            if hasattr(self.optimizer, "update_count"):
                self.optimizer.update_count += 1
            return self._call_locked(*args, **kwargs)

    def _call_locked(self, *args, **kwargs):
        optimizer = self.optimizer
        # Only a multiopt_lab MultiOptimizer has these; it takes the model itself, whose
        # module classes rules may read.
        if getattr(optimizer, "has_pending_repartition", False):
            optimizer.apply_pending_repartition(self.model)
        if getattr(optimizer, "_plan", True) is None:
            optimizer.init(self.model)
        every = getattr(optimizer, "metrics_every", None)
        recording = False
        if every is not None:
            if self._version != optimizer.version or self._next_step is None:
                # Read once per trace generation, then counted here: reading
                # it every step would wait for the previous step.
                self._next_step = int(optimizer.step.item()) + 1
            recording = is_metrics_step(self._next_step, every)
        compiled = self._compiled_for(recording)
        if not hasattr(optimizer, "_trace_recording"):
            return compiled(*args, **kwargs)
        optimizer._trace_recording = recording
        try:
            result = compiled(*args, **kwargs)
        finally:
            optimizer._trace_recording = None
        if self._next_step is not None:
            self._next_step += 1
        return result


def compile_step(step: Callable, model: Any, optimizer: Any,
                 state: Sequence[Any] = ()) -> CompiledStep:
    """Compile a training step with ``[model.state, optimizer.state]`` as its state.

    Equivalent to ``mx.compile(step, inputs=s, outputs=s)`` with
    ``s = [model.state, optimizer.state, *state]``, except that it re-traces
    after a repartition (also one requested with
    ``optimizer.request_repartition``, applied just before the next step), a
    new optimizer state, ``init`` or a change of ``metrics_every``, and that
    metrics every k steps are computed only on those steps.

    Args:
        step (callable): The step; it must call ``optimizer.update``.
        model (nn.Module): The model the step trains.
        optimizer (MultiOptimizer): Its optimizer (any MLX optimizer works,
            without the re-tracing).
        state (list, optional): More state to carry, e.g. ``[mx.random.state]``.

    Returns:
        CompiledStep: Call it like ``step``.

    Example:
        >>> def train_step(x, y):                                  # doctest: +SKIP
        ...     loss, grads = loss_and_grad(model, x, y)
        ...     optimizer.update(model, grads)
        ...     return loss
        >>> step = compile_step(train_step, model, optimizer)      # doctest: +SKIP
        >>> optimizer.repartition(["ndim >= 2"], model)            # doctest: +SKIP
        >>> step(x, y)   # traced again for the new routing        # doctest: +SKIP
    """
    return CompiledStep(step, model, optimizer, state)
