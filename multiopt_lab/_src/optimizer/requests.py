"""Repartitions requested from another thread, applied at the next step boundary.

The live rule editor calls ``MultiOptimizer.request_repartition`` while a
training loop runs; the optimizer takes the request from a
:class:`RepartitionRequests` at its next update (or at
``between_steps``) and applies it whole, or not at all.
"""

from __future__ import annotations

import threading

from multiopt_lab._src.partition.assignment import Move

__all__ = ["PendingRepartition", "RepartitionRequests"]


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
        """True once the next update applied (or refused) it.

        Example:
            >>> PendingRepartition((), None).done
            False
        """
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until applied or refused; False on timeout.

        Example:
            >>> PendingRepartition((), None).wait(0.01)
            False
        """
        return self._event.wait(timeout)

    def finish(self, moves: list[Move] | None, error: Exception | None) -> None:
        """Record the outcome and wake whoever waits (called once, by the optimizer).

        Example:
            >>> pending = PendingRepartition((), None); pending.finish([], None); pending.done
            True
        """
        self.moves, self.error = moves, error
        self._event.set()


class RepartitionRequests:
    """At most one pending request, handed from the thread that asks to the one that trains.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: PendingRepartition | None = None

    @property
    def pending(self) -> PendingRepartition | None:
        """The request waiting for the next step boundary, if any."""
        return self._pending

    def submit(self, request: PendingRepartition) -> PendingRepartition:
        """Make ``request`` the pending one; a request not yet applied is replaced (and told)."""
        with self._lock:
            replaced, self._pending = self._pending, request
        if replaced is not None:
            replaced.finish(None, RuntimeError("replaced by a later request"))
        return request

    def take(self) -> PendingRepartition | None:
        """The pending request, removed (None when there is none)."""
        with self._lock:
            request, self._pending = self._pending, None
        return request
