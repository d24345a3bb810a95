"""Per-group metrics of a MultiOptimizer: when to record them, where they live, how to read them.

A :class:`MetricsRecorder` decides whether an update records (steps 1,
1 + k, 1 + 2k, ... of an eager loop; inside a compiled step, the variant
chosen for it), keeps the lazy metric arrays of the last recorded step in one
dict for the optimizer's lifetime (the optimizer's ``state`` shows it as
``"metrics"``, so a compiled step carries the arrays out), and turns them into
floats when read. With ``per_parameter`` the dict also holds
``"parameter_sums"`` (one row per parameter), and the recorder remembers the
paths and group labels those rows belong to (set when the update that made
them ran or was traced: a compiled step replays the same rows).
"""

from __future__ import annotations

import warnings
from typing import Any
from collections.abc import Callable, Sequence

import mlx.core as mx

from multiopt_lab._src.optimizer.metrics import is_metrics_step
from multiopt_lab._src.optimizer.metrics_reader import MetricsReader
from multiopt_lab._src.optimizer.parameter_metrics import ParameterMetrics, ParameterMetricsReader

__all__ = ["MetricsRecorder", "check_every", "check_per_parameter"]

_LOST = ("the metrics computed inside mx.compile were not among its outputs, so they are lost: "
         "capture the optimizer's state itself (state = [model.state, optimizer.state]) in the "
         "compiled function, or use multiopt_lab.compile_step")


def check_every(every: Any) -> int | None:
    """``every`` if it is a positive int or None, else a ValueError.
    """
    if every is None:
        return None
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"expected metrics_every to be a positive int or None, found {every!r}")
    return every


def check_per_parameter(per_parameter: Any) -> bool:
    """``per_parameter`` if it is True or False, else a TypeError.
    """
    if not isinstance(per_parameter, bool):
        raise TypeError(f"expected per_parameter to be True or False, found {per_parameter!r}")
    return per_parameter


class MetricsRecorder:
    """When a MultiOptimizer records metrics, and the arrays of the last recorded step.

    Args:
        every (int | None): Record every this many steps; None: off.
        per_parameter (bool): Also record every parameter's sums. Default: ``False``.

    Attributes:
        every (int | None): As given (change it with :meth:`set_every`).
        per_parameter (bool): As given (change it with :meth:`set_per_parameter`).
        arrays (dict): The lazy arrays of the last recorded step
            (``sums``, ``learning_rates``, ``step``, and ``parameter_sums``
            with ``per_parameter``); one dict for the recorder's lifetime.
        traced (bool): Whether an update traced by ``mx.compile`` records.
            A trace is replayed as it is, so this picks one of two variants
            of a compiled step; ``between_steps(record_metrics=...)`` sets it.
    """

    def __init__(self, every: int | None, per_parameter: bool = False):
        self.every = check_every(every)
        self.per_parameter = check_per_parameter(per_parameter)
        self.arrays: dict[str, Any] = {}
        self.traced = True
        self.recorded = False
        self._reader = MetricsReader()
        self._parameter_reader = ParameterMetricsReader()
        self._layout: tuple[tuple[str, ...], tuple[int, ...]] = ((), ())
        self._unverified = False

    def set_per_parameter(self, per_parameter: Any) -> bool:
        """Change ``per_parameter`` (validated); True when it changed."""
        per_parameter = check_per_parameter(per_parameter)
        changed = per_parameter != self.per_parameter
        self.per_parameter = per_parameter
        if changed and not per_parameter:
            self.arrays.pop("parameter_sums", None)
        return changed

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
        """
        if self.every is None:
            return False
        if tracing:
            return self.traced
        return is_metrics_step(step() if callable(step) else step, self.every)

    def reserve(self, groups: int, step_dtype: Any, leaves: int | None = None) -> None:
        """Hold zeros of the recorded shapes until a step records.

        A compiled step tells its variants apart by the arrays of the state
        it captured: with these in place, the first step that records already
        has the inputs of every later one (no extra trace). ``leaves``: how
        many parameters the current routing has (None: not known yet).
        """
        if not self.arrays:
            self.arrays.update(sums=mx.zeros((groups, 3), mx.float32),
                               learning_rates=mx.zeros((groups,), mx.float32),
                               step=mx.zeros((), step_dtype))
            mx.eval(list(self.arrays.values()))
        held = self.arrays.get("parameter_sums")
        if self.per_parameter and leaves is not None and (
                held is None or tuple(held.shape) != (leaves, 3)):
            self.arrays["parameter_sums"] = zeros = mx.zeros((leaves, 3), mx.float32)
            mx.eval(zeros)

    def store(self, arrays: dict[str, Any], tracing: bool,
              layout: tuple[Sequence[str], Sequence[int]] | None = None) -> None:
        """Keep this update's metric arrays (lazy, or a trace's placeholders).

        ``layout``: the paths and group indices of the ``parameter_sums`` rows.
        Inside a trace whose inputs do not hold :attr:`arrays` (the
        optimizer's state was not captured whole), the metrics could never
        leave it: they are not kept, and a warning says so.
        """
        if tracing and not self._captured():
            warnings.warn(_LOST, stacklevel=4)  # the line that called optimizer.update
            return
        self.arrays.update(arrays)
        if layout is not None:
            self._layout = (tuple(layout[0]), tuple(layout[1]))
        self.recorded = True
        # Inside a plain mx.compile whose state does not carry them out, the
        # placeholders would be all that is left: look at them once later.
        self._unverified = tracing

    def _captured(self) -> bool:
        # mx.compile puts placeholders in place of the arrays of the state it
        # captured (evaluating one raises ValueError): a concrete array here
        # means the dict holding the metrics is not among its inputs.
        held = self.arrays.get("step")
        if held is None:
            return True  # nothing to tell by: kept, and verified when read
        try:
            mx.eval(held)
        except ValueError:
            return True
        return False

    def clear(self) -> None:
        """Forget the last recorded step (its groups may be gone)."""
        self.arrays.clear()
        self._layout = ((), ())
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
            warnings.warn(_LOST, stacklevel=4)
        self._unverified = False

    def read(self, labels: Sequence[str]) -> dict | None:
        """``{label: {metric: float}, "total": {...}}`` of the last recorded step, or None."""
        self.verify()
        return self._reader.read(self.arrays, labels) if self.recorded else None

    def read_parameters(self, labels: Sequence[str]) -> ParameterMetrics | None:
        """Every parameter's metrics of the last recorded step, or None.

        None before a recorded step, with ``per_parameter`` off, or when the
        stored rows belong to no known routing (a state set from outside).
        """
        self.verify()
        sums = self.arrays.get("parameter_sums")
        paths, groups = self._layout
        if not (self.recorded and self.per_parameter) or sums is None or not paths:
            return None
        step = self._reader.step(self.arrays, labels)
        if step is None or max(groups) >= len(labels):
            return None
        return self._parameter_reader.read(sums, step, paths, [labels[g] for g in groups])

    def step(self, labels: Sequence[str]) -> int | None:
        """The optimizer step :meth:`read` belongs to (None before any record)."""
        self.verify()
        return self._reader.step(self.arrays, labels) if self.recorded else None
