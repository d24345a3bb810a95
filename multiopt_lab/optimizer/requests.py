"""Repartitions requested from another thread, applied at the next update boundary.

The live rule editor calls ``request_repartition`` while a training loop runs;
the next ``update`` (or ``compile_step`` call) applies it whole, or not at all.

Example:
    >>> import mlx.optimizers as optim
    >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
    >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
    >>> opt.request_repartition(["ndim == 1"]).done
    False
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Sequence

import mlx.core as mx

from multiopt_lab.partition.assignment import Move
from multiopt_lab.optimizer.groups import check_filters, check_labels
from multiopt_lab.optimizer.repartition import existing_entry

__all__ = ["PendingRepartition", "RequestsMixin"]


class PendingRepartition:
    """A repartition requested for the next update: wait on it, then read the outcome.

    Attributes:
        moves (list[Move] | None): What moved, once applied.
        error (Exception | None): Why it was not applied (nothing changed then).

    Example:
        >>> pending = PendingRepartition(("ndim == 1",), None)
        >>> pending.done
        False
    """

    def __init__(self, filters: tuple, labels: tuple | None):
        self.filters, self.labels = filters, labels
        self.moves: list[Move] | None = None
        self.error: Exception | None = None
        self._event = threading.Event()

    @property
    def done(self) -> bool:
        """True once the next update applied (or refused) it."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until applied or refused; False on timeout."""
        return self._event.wait(timeout)

    def _finish(self, moves: list[Move] | None, error: Exception | None) -> None:
        self.moves, self.error = moves, error
        self._event.set()


class RequestsMixin:
    """``request_repartition`` and its application at the next update."""

    def request_repartition(self, filters: Sequence[Any],
                            labels: Sequence[str] | None = None) -> PendingRepartition:
        """Ask for a repartition at the start of the next update (thread-safe).

        The filters are parsed now (a bad rule raises here); they are applied
        to the parameters at the next :meth:`update`, whole or not at all. A
        later request replaces one not yet applied.

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
            >>> opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.1)], ["ndim == 2"])
            >>> opt.request_repartition(["ndim == 1"]).done
            False
        """
        rules = check_filters(filters, self.optimizers, self.cache)
        checked = None if labels is None else check_labels(labels, self.optimizers)
        pending = PendingRepartition(rules, checked)
        with self._pending_lock:
            replaced, self._pending = self._pending, pending
        if replaced is not None:
            replaced._finish(None, RuntimeError("replaced by a later request"))
        return pending

    @property
    def has_pending_repartition(self) -> bool:
        """True when :meth:`request_repartition` waits for the next update."""
        return self._pending is not None

    def apply_pending_repartition(self, parameters: Any) -> list[Move] | None:
        """Apply a requested repartition now (``update`` does it by itself).

        Returns the moves, or None when nothing was pending or it failed (the
        error is on the request and in a warning; the optimizer is unchanged).
        """
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return None
        try:
            with self._update_lock:
                moves = self.repartition(pending.filters, parameters, pending.labels)
                _evaluate_fresh_state(self, moves)
        except Exception as error:  # reported, never half applied
            pending._finish(None, error)
            warnings.warn(f"requested repartition not applied: {error}", stacklevel=3)
            return None
        pending._finish(moves, None)
        return moves

    def _apply_pending(self, parameters: Any) -> None:
        if self._pending is not None:
            # The model as given (repartition reads its trainable parameters), so
            # that rules reading module kinds see them.
            self.apply_pending_repartition(parameters)


def _evaluate_fresh_state(optimizer: Any, moves: list[Move]) -> None:
    # MLX streams belong to threads: state initialised lazily on this (the editor's) thread
    # cannot be evaluated by a training loop on another one ("There is no Stream(cpu, 0) in
    # current thread"), so compute the moved parameters' fresh state here.
    labels = list(optimizer.labels)
    fresh = []
    for move in moves:
        entry = existing_entry(optimizer.optimizers[labels.index(move.target)].state, move.path)
        fresh += [v for v in (entry or {}).values() if isinstance(v, mx.array)]
    mx.eval(fresh)
