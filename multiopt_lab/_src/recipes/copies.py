"""Copies of a user's optimizer for the groups of a recipe: another learning rate, no weight decay.

A recipe gives each group its own optimizer object (MLX's ``MultiOptimizer``
needs one per group), built from the one the user passed, which must not
have stepped yet: its copies start from the same hyperparameters and an
empty state.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import mlx.optimizers as optim

from multiopt_lab._src.arguments import check_optimizer
from multiopt_lab._src.mlx_internals import schedules, set_schedule
# Rule files describe a scaled schedule, so it lives with the schedules.
from multiopt_lab._src.optimizer_file.schedules import ScaledSchedule

__all__ = ["fresh_copy", "scaled_copy", "without_weight_decay", "ScaledSchedule", "check_fresh"]


def check_fresh(optimizer: Any, recipe: str, argument: str) -> optim.Optimizer:
    """``optimizer`` if it is an MLX optimizer that has not stepped yet; else a clear error.
    """
    check_optimizer(optimizer, f"{recipe}()", argument)
    held = [k for k, v in optimizer.state.items() if isinstance(v, (dict, list, tuple))]
    if held:
        raise ValueError(f"{recipe}(): {argument} ({type(optimizer).__name__}) already holds state "
                         f"for parameters ({', '.join(held[:3])}...); pass a new optimizer: the "
                         "recipe copies it for its groups, and each starts with an empty state")
    return optimizer


def fresh_copy(optimizer: optim.Optimizer) -> optim.Optimizer:
    """An independent copy of an optimizer that has not stepped: same hyperparameters.
    """
    return copy.deepcopy(optimizer)


def scaled_copy(optimizer: optim.Optimizer, factor: float) -> optim.Optimizer:
    """A copy whose learning rate (a constant or a schedule) is ``factor`` times the original's.
    """
    twin = fresh_copy(optimizer)
    schedule = schedules(optimizer).get("learning_rate")
    if schedule is not None:  # MLX has no public way to replace a schedule
        set_schedule(twin, "learning_rate", ScaledSchedule(schedule, factor), optimizer.step)
    else:
        rate = float(optimizer.learning_rate.item())
        twin.learning_rate = rate * factor
        scaled = float(twin.learning_rate.item())  # type: ignore[attr-defined]  # as the optimizer holds it (a float32 array)
        if not math.isfinite(scaled) or (scaled == 0 and rate * factor != 0):
            raise ValueError(f"the learning rate {rate:g} times {factor:g} is {scaled:g} in "
                             f"{twin.learning_rate.dtype}, which no step can use; pick a factor "  # type: ignore[attr-defined]  # an array, as above
                             "that keeps it a finite, non-zero number")
    return twin


def without_weight_decay(optimizer: optim.Optimizer) -> optim.Optimizer:
    """A copy with ``weight_decay = 0``.

    Raises:
        ValueError: The optimizer has no weight decay to remove.
    """
    decay = getattr(optimizer, "weight_decay", None)
    if decay is None:
        raise ValueError(f"{type(optimizer).__name__} has no weight decay; pass one that has "
                         "(optim.AdamW, optim.SGD(weight_decay=...), optim.Muon, ...)")
    if not decay:
        raise ValueError(f"{type(optimizer).__name__} has weight_decay=0 already, so there is "
                         "nothing to turn off; give it the weight decay the other parameters get")
    twin = fresh_copy(optimizer)
    twin.weight_decay = 0.0  # type: ignore[attr-defined]  # checked above: it has weight_decay
    return twin
