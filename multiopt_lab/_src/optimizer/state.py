"""The one ``state`` dict of a MultiOptimizer, which compiled steps capture; changed only in place.

MLX's ``mx.compile(step, inputs=state, outputs=state)`` with ``state =
[model.state, optimizer.state]`` keeps the very containers it was given:
each call flattens them for its inputs and writes its outputs back into
them. mlx-lm's ``train()`` does exactly that, once. So a
:class:`StateContainer` hands out one dict for the optimizer's lifetime, and
every change (a repartition, a state loaded from a checkpoint, metrics turned
on or off) changes that dict, its ``"states"`` list and each group's own
state dict in place (:func:`install_state`), where the compiled step will
find it at its next call.

A compiled step keeps one trace per signature of its inputs (their count,
shapes and dtypes). A new routing usually changes that signature, but not
always (two parameters of one shape trading groups), and replaying the old
trace would then update each parameter with the other's state. After every
such change of an optimizer that a compiled step has traced, the state holds
``"routing"``: a few 0-d arrays whose dtypes spell a new number in binary,
so the next call traces again, also under ``mx.compile(...,
shapeless=True)``. :func:`multiopt_lab.save_state` leaves it out.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import mlx.core as mx

from multiopt_lab._src.mlx_internals import (install_state_dict, keeps_state_dict, mark_initialized,
                                        state_dict)

__all__ = ["StateContainer", "install_state", "routing_marker"]


def install_state(optimizer: Any, tree: dict, initialized: bool = True) -> None:
    """Make ``tree`` ``optimizer``'s state, keeping the state dict it already has.

    ``initialized=False`` is what MLX's ``state`` setter says: "check this
    state against the parameters before the next step".
    """
    if keeps_state_dict(optimizer):
        home = state_dict(optimizer)
        assert home is not None  # kept: MLX's state property over its dict
        if home is not tree:
            contents = dict(tree)
            home.clear()
            home.update(contents)
    else:
        optimizer.state = tree
    mark_initialized(optimizer, initialized)


def routing_marker(generation: int) -> tuple:
    """0-d arrays whose dtypes spell ``generation`` in binary (bool_ for 0, uint8 for 1).
    """
    return tuple(mx.array(0, mx.uint8) if bit == "1" else mx.array(False)
                 for bit in format(generation, "b"))


class StateContainer:
    """``{"states": [each group's state dict], ...}``: one dict, filled in place.

    Args:
        optimizers (list[Optimizer]): The groups' optimizers.

    Attributes:
        tree (dict): The dict ``MultiOptimizer.state`` returns, for its lifetime.
    """

    def __init__(self, optimizers: Sequence[Any]):
        self.tree: dict[str, Any] = {"states": []}
        self.optimizers: list[Any] = []
        self._generation = 0
        self.sync(optimizers)

    def sync(self, optimizers: Sequence[Any], refresh: bool = False) -> bool:
        """Make ``tree["states"]`` hold each optimizer's state dict; True when it changed.

        An optimizer whose state dict was replaced from outside
        (``opt.optimizers[0].state = ...``) gets its new contents put into the
        dict the container (and any compiled step) holds. ``refresh`` reads
        the state of optimizers that build their own (a nested multi-optimizer)
        again.
        """
        states, owners = self.tree["states"], self.optimizers
        changed = False
        for i, optimizer in enumerate(optimizers):
            plain = keeps_state_dict(optimizer)
            if i < len(states) and owners[i] is optimizer:
                if not plain:
                    if refresh:
                        states[i] = optimizer.state
                    continue
                if states[i] is state_dict(optimizer):
                    continue
                home = states[i]
                contents = dict(state_dict(optimizer))  # type: ignore[arg-type]  # a plain optimizer: a dict
                home.clear()
                home.update(contents)
                install_state_dict(optimizer, home)
            else:
                own = state_dict(optimizer) if plain else optimizer.state
                if i < len(states):
                    states[i], owners[i] = own, optimizer
                else:
                    states.append(own)
                    owners.append(optimizer)
            changed = True
        if len(states) > len(optimizers):
            del states[len(optimizers):]
            del owners[len(optimizers):]
            changed = True
        return changed

    def show(self, key: str, value: Any | None) -> None:
        """Hold ``value`` under ``key`` (``"metrics"``, ``"nonfinite"``), or nothing when None."""
        if value is None:
            self.tree.pop(key, None)
        else:
            self.tree[key] = value

    def routing_changed(self) -> None:
        """A compiled step that captured this state must trace again at its next call."""
        self._generation += 1
        self.tree["routing"] = routing_marker(self._generation)
