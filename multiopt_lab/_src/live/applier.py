"""Apply new rules to a live MultiOptimizer at a step boundary, whole or not at all.

The editor never swaps the routing under a running update. It asks the
optimizer for a repartition at the next update boundary
(``request_repartition``, thread-safe), so a training loop running in another
thread of the same kernel picks it up between two steps. When no training is
running (no step ran for ``idle_seconds``: neither an update nor a compiled
step's replay, see ``MultiOptimizer.activity``), or outside a running event
loop, the applier applies the request itself with
``apply_pending_repartition``. Either way the optimizer either takes the whole
new partition or, on error, stays exactly as it was.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any
from collections.abc import Callable

__all__ = ["Applier"]


def _activity(optimizer) -> tuple | None:
    # Python objects only: reading them never touches MLX arrays, which the
    # training thread may be evaluating at this very moment. A compiled step's
    # replay runs no Python of ours but writes a new step counter.
    activity = getattr(optimizer, "activity", None)
    if activity is not None:
        return activity
    count = getattr(optimizer, "update_count", None)
    return None if count is None else (count,)


def _stepped(before: tuple | None, now: tuple | None) -> bool:
    if before is None or now is None or len(before) != len(now):
        return before is not now
    return before[0] != now[0] or any(a is not b for a, b in zip(before[1:], now[1:]))


class Applier:
    """Carries one requested repartition through to the optimizer.

    Args:
        optimizer (MultiOptimizer): The live optimizer.
        parameters: The model (or its trainable parameters) the optimizer trains.
        on_done (Callable[[PendingRepartition], None]): Called once the request is
            applied (``.moves``) or refused (``.error``).
        poll_seconds (float, optional): How often to look at the request. Default: ``0.2``.
        idle_seconds (float, optional): No update for this long means no training runs,
            so apply directly. Default: ``0.6``.
    """

    def __init__(self, optimizer, parameters, on_done: Callable, *, poll_seconds: float = 0.2,
                 idle_seconds: float = 0.6):
        self.optimizer = optimizer
        self.parameters = parameters
        self.on_done = on_done
        self.poll_seconds = poll_seconds
        self.idle_seconds = idle_seconds
        self.pending: Any = None  # the optimizer's repartition request
        self._reported = None
        self._last_activity: tuple | None = None
        self._idle_for = 0.0

    @property
    def waiting(self) -> bool:
        """A request is out and not yet applied or refused."""
        return self.pending is not None and not self.pending.done

    def apply(self, rules, labels) -> None:
        """Request ``rules`` for the next update boundary and see it through.

        Raises:
            RuleError: When a rule does not parse (nothing is requested then).
        """
        self.pending = self.optimizer.request_repartition(list(rules), list(labels))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._apply_now()
            return
        self._last_activity = _activity(self.optimizer)
        self._idle_for = 0.0
        loop.call_later(self.poll_seconds, self._check, self.pending)

    def report_if_done(self) -> bool:
        """Report a request that was applied while no event loop ran, now; True if it did.

        A training loop on the kernel's main thread (``train()`` in a cell) applies
        a request at its next step, but the event loop that would notice it, and
        call ``on_done``, runs only once the cell ends. Whoever reads the outcome
        first (the editor's status, its text form) asks here; ``on_done`` is
        called once per request either way.
        """
        pending = self.pending
        if pending is None or not pending.done or pending is self._reported:
            return False
        self._reported = pending
        self.on_done(pending)
        return True

    def _check(self, pending) -> None:
        if pending is not self.pending:
            return  # a later Apply replaced this request; it reports for itself
        if pending.done:
            self.report_if_done()
            return
        activity = _activity(self.optimizer)
        if activity is None or not _stepped(self._last_activity, activity):
            self._idle_for += self.poll_seconds
            if self._idle_for >= self.idle_seconds:
                self._apply_now()
                return
        else:
            self._last_activity, self._idle_for = activity, 0.0
        asyncio.get_running_loop().call_later(self.poll_seconds, self._check, pending)

    def _apply_now(self) -> None:
        pending = self.pending
        with warnings.catch_warnings():
            # The refusal is reported through on_done; no second copy on stderr.
            warnings.simplefilter("ignore")
            self.optimizer.apply_pending_repartition(self.parameters)
        if pending is not None and pending.done:
            self.report_if_done()
