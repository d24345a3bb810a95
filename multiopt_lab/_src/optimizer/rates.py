"""Per-group learning rates of a multi-group optimizer: read every group's, set some by label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from collections.abc import Sequence

from multiopt_lab._src.arguments import check_number, found
from multiopt_lab._src.mlx_internals import schedules

__all__ = ["learning_rates_of", "set_learning_rates"]


def learning_rates_of(optimizers: Sequence[Any], labels: Sequence[str]) -> dict[str, float | None]:
    """``{label: current learning rate}`` (a schedule's current value; None when there is none).
    """
    rates = {}
    for label, optimizer in zip(labels, optimizers):
        value = optimizer.state.get("learning_rate")
        rates[label] = None if value is None else float(value.item())
    return rates


def set_learning_rates(optimizers: Sequence[Any], labels: Sequence[str],
                       rates: dict[str, float]) -> None:
    """Set the learning rate of the groups named in ``rates``; all checked before any is set.

    Raises:
        KeyError: A label that names no group.
        ValueError: A group whose learning rate follows a schedule (the
            next step would overwrite the value).
    """
    if not isinstance(rates, Mapping):
        raise TypeError(f"learning_rates must be a dict {{group label: rate}}, found "
                        f"{found(rates)}; e.g. optimizer.learning_rates = {{{labels[0]!r}: 1e-3}}")
    for label, value in rates.items():
        if not hasattr(value, "dtype"):  # an mx.array is MLX's own form of a rate
            check_number(value, "learning_rates", f"the rate of {label!r}", low=0)
    labels = list(labels)
    unknown = [label for label in rates if label not in labels]
    if unknown:
        raise KeyError(f"no group {', '.join(map(repr, unknown))}; the groups are "
                       f"{', '.join(map(repr, labels))}")
    by_label = dict(zip(labels, optimizers))
    scheduled = [label for label in rates if "learning_rate" in schedules(by_label[label])]
    if scheduled:
        raise ValueError(f"group(s) {', '.join(map(repr, scheduled))} follow a learning-rate "
                         "schedule, which would overwrite the value on the next step; "
                         "give that optimizer a constant learning rate instead")
    for label, value in rates.items():
        by_label[label].learning_rate = value
