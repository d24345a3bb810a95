"""The metrics half of :class:`~multiopt_lab.optimizer.multi_optimizer.MultiOptimizer`.

Example:
    >>> import mlx.optimizers as optim
    >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
    >>> MultiOptimizer([optim.SGD(0.1)], metrics_every=10).metrics is None
    True
"""

from __future__ import annotations

import warnings
from typing import Any

import mlx.core as mx

from multiopt_lab.optimizer.metrics import is_metrics_step, metric_arrays, nonfinite_groups, pieces_sums

__all__ = ["MetricsMixin", "check_every"]


def check_every(every: Any) -> int | None:
    """``every`` if it is a positive int or None, else a ValueError.

    Example:
        >>> check_every(10)
        10
    """
    if every is None:
        return None
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"expected metrics_every to be a positive int or None, found {every!r}")
    return every


class MetricsMixin:
    """``metrics_every``, ``metrics``, ``metrics_step``, ``nonfinite_groups``."""

    @property
    def metrics_every(self) -> int | None:
        """Record metrics every this many steps (steps 1, 1 + k, ...); None: off."""
        return self._metrics_every

    @metrics_every.setter
    def metrics_every(self, every: int | None) -> None:
        every = check_every(every)
        if every != self._metrics_every:
            self._metrics_every = every
            self.version += 1

    def _records_this_step(self, tracing: bool) -> bool:
        if self._metrics_every is None:
            return False
        if tracing:
            # A trace is replayed as is: compile_step says which variant this
            # is; a plain mx.compile records on every step.
            forced = self._trace_recording
            return True if forced is None else forced
        return is_metrics_step(self._next_step(), self._metrics_every)

    def _next_step(self) -> int:
        # Evaluated already after the previous step's mx.eval: no extra work.
        return int(self.optimizers[0].state["step"].item()) + 1

    def _metric_values(self, pieces: list[list]) -> dict[str, Any]:
        # Lazy arrays (or, inside a compiled update, its outputs): nothing is stored here.
        # ``pieces``: per group, the (gradient, old, new) arrays of its update.
        sums = [pieces_sums(group) for group in pieces]
        rates = [o.state.get("learning_rate") for o in self.optimizers]
        return metric_arrays(sums, rates, self.optimizers[0].state["step"])

    def _verify_traced_metrics(self) -> None:
        if not self._metrics_unverified:
            return
        try:
            mx.eval(list(self._metric_arrays.values()))
        except ValueError:
            return  # still inside the trace: look again later
        except RuntimeError:
            self._metric_arrays.clear()
            warnings.warn(
                "the metrics computed inside mx.compile were not among its outputs, so they "
                "are lost: set metrics_every before building the compiled function's state "
                "([model.state, optimizer.state]), or use multiopt_lab.compile_step",
                stacklevel=3)
        self._metrics_unverified = False

    @property
    def metrics(self) -> dict[str, dict[str, float]] | None:
        """The last recorded step's metrics: ``{label: {...}, "total": {...}}``, or None.

        Per group: ``update_norm``, ``grad_norm``, ``param_norm``,
        ``update_ratio`` (update norm / parameter norm) and ``learning_rate``
        (NaN when the optimizer has none); ``"total"`` holds the norms over
        all groups. Python floats, computed on first read.
        """
        self._verify_traced_metrics()
        return self._metrics_reader.read(self._metric_arrays, self.labels)

    @property
    def metrics_step(self) -> int | None:
        """The step :attr:`metrics` belong to (None before any recorded step)."""
        self._verify_traced_metrics()
        return self._metrics_reader.step(self._metric_arrays, self.labels)

    @property
    def nonfinite_groups(self) -> dict[str, tuple[str, ...]]:
        """Groups whose gradient or update was not finite at the last recorded step.

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
            >>> MultiOptimizer([optim.SGD(0.1)]).nonfinite_groups
            {}
        """
        return nonfinite_groups(self.metrics)
