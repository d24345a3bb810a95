"""Per-group metrics of a MultiOptimizer: when to record them, where they live, how to read them.

A :class:`MetricsRecorder` decides whether an update records (steps 1,
1 + k, 1 + 2k, ... of an eager loop; inside a compiled step, the variant
chosen for it), keeps the lazy metric arrays of the last recorded step in one
dict for the optimizer's lifetime (the optimizer's ``state`` shows it as
``"metrics"``, so a compiled step carries the arrays out), and turns them into
floats when read.

Example:
    >>> recorder = MetricsRecorder(10)
    >>> [step for step in range(1, 25) if recorder.records(step, tracing=False)]
    [1, 11, 21]
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import mlx.core as mx

from multiopt_lab.optimizer.metrics import is_metrics_step
from multiopt_lab.optimizer.metrics_reader import MetricsReader

__all__ = ["MetricsRecorder", "check_every"]


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


class MetricsRecorder:
    """When a MultiOptimizer records metrics, and the arrays of the last recorded step.

    Args:
        every (int | None): Record every this many steps; None: off.

    Attributes:
        every (int | None): As given (change it with :meth:`set_every`).
        arrays (dict): The lazy arrays of the last recorded step
            (``sums``, ``learning_rates``, ``step``); one dict for the
            recorder's lifetime.
        traced (bool): Whether an update traced by ``mx.compile`` records.
            A trace is replayed as it is, so this picks one of two variants
            of a compiled step; ``between_steps(record_metrics=...)`` sets it.

    Example:
        >>> MetricsRecorder(None).records(1, tracing=False)
        False
    """

    def __init__(self, every: int | None):
        self.every = check_every(every)
        self.arrays: dict[str, Any] = {}
        self.traced = True
        self.recorded = False
        self._reader = MetricsReader()
        self._unverified = False

    def set_every(self, every: Any) -> bool:
        """Change ``every`` (validated); True when it changed."""
        every = check_every(every)
        changed = every != self.every
        self.every = every
        return changed

    @property
    def shown(self) -> bool:
        """Whether the optimizer's state holds the metric arrays now.

        Metrics on, and (inside a compiled step) the recording variant chosen:
        a compiled step whose state lacks them is the variant without metrics.
        """
        return self.every is not None and self.traced

    def records(self, step: int | Callable[[], int], tracing: bool) -> bool:
        """Whether the update to step ``step`` (1-based, or a function that reads it) records.

        The step is read only when metrics are on and the update is eager.

        Example:
            >>> MetricsRecorder(10).records(2, tracing=True)
            True
        """
        if self.every is None:
            return False
        if tracing:
            return self.traced
        return is_metrics_step(step() if callable(step) else step, self.every)

    def reserve(self, groups: int, step_dtype: Any) -> None:
        """Hold zeros of the recorded shapes until a step records.

        A compiled step tells its variants apart by the arrays of the state
        it captured: with these in place, the first step that records already
        has the inputs of every later one (no extra trace).
        """
        if not self.arrays:
            self.arrays.update(sums=mx.zeros((groups, 3), mx.float32),
                               learning_rates=mx.zeros((groups,), mx.float32),
                               step=mx.zeros((), step_dtype))
            mx.eval(list(self.arrays.values()))

    def store(self, arrays: dict[str, Any], tracing: bool) -> None:
        """Keep this update's metric arrays (lazy, or a trace's placeholders)."""
        self.arrays.update(arrays)
        self.recorded = True
        # Inside a plain mx.compile whose state does not carry them out, the
        # placeholders would be all that is left: look at them once later.
        self._unverified = tracing

    def clear(self) -> None:
        """Forget the last recorded step (its groups may be gone)."""
        self.arrays.clear()
        self.recorded = False
        self._unverified = False

    def verify(self) -> None:
        """Warn, once, when metrics computed inside ``mx.compile`` never left it."""
        if not self._unverified:
            return
        try:
            mx.eval(list(self.arrays.values()))
        except ValueError:
            return  # still inside the trace: look again later
        except RuntimeError:
            self.arrays.clear()
            warnings.warn(
                "the metrics computed inside mx.compile were not among its outputs, so they "
                "are lost: capture the optimizer's state itself (state = [model.state, "
                "optimizer.state]) in the compiled function, or use multiopt_lab.compile_step",
                stacklevel=4)
        self._unverified = False

    def read(self, labels: Sequence[str]) -> dict | None:
        """``{label: {metric: float}, "total": {...}}`` of the last recorded step, or None."""
        self.verify()
        return self._reader.read(self.arrays, labels) if self.recorded else None

    def step(self, labels: Sequence[str]) -> int | None:
        """The optimizer step :meth:`read` belongs to (None before any record)."""
        self.verify()
        return self._reader.step(self.arrays, labels) if self.recorded else None
