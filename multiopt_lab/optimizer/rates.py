"""Per-group learning rates and the step of :class:`~multiopt_lab.optimizer.multi_optimizer.MultiOptimizer`.

Example:
    >>> import mlx.optimizers as optim
    >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
    >>> MultiOptimizer([optim.SGD(0.5), optim.Adam(0.25)], ["ndim == 2"]).learning_rates
    {'sgd': 0.5, 'adam': 0.25}
"""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim

__all__ = ["LearningRatesMixin"]


class LearningRatesMixin:
    """``learning_rate`` (MLX's), ``learning_rates`` (every group's) and ``step``."""

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
            >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
            >>> MultiOptimizer([optim.SGD(0.5), optim.Adam(0.25)], ["ndim == 2"]).learning_rates
            {'sgd': 0.5, 'adam': 0.25}
        """
        rates = {}
        for label, optimizer in zip(self.labels, self.optimizers):
            value = optimizer.state.get("learning_rate")
            rates[label] = None if value is None else float(value.item())
        return rates

    @learning_rates.setter
    def learning_rates(self, rates: dict[str, float]) -> None:
        unknown = [label for label in rates if label not in self.labels]
        if unknown:
            raise KeyError(f"no group {', '.join(map(repr, unknown))}; the groups are "
                           f"{', '.join(map(repr, self.labels))}")
        scheduled = [l for l in rates if "learning_rate" in self._optimizer(l)._schedulers]
        if scheduled:
            raise ValueError(f"group(s) {', '.join(map(repr, scheduled))} follow a learning-rate "
                             "schedule, which would overwrite the value on the next step; "
                             "give that optimizer a constant learning rate instead")
        for label, value in rates.items():
            self._optimizer(label).learning_rate = value

    @property
    def step(self) -> mx.array:
        """Group 0's step count (every group's advances on every update, as in MLX).

        MLX's ``MultiOptimizer.step`` raises ``KeyError``.
        """
        return self.optimizers[0].step

    def _optimizer(self, label: str) -> optim.Optimizer:
        return self.optimizers[self.labels.index(label)]
