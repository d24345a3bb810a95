"""Who listens to a History: callbacks told of each change (a monitor redraws, a widget updates).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Subscriber", "Subscribers"]

#: ``callback(history, event)``; events ``record``, ``start_run``, ``end_run``, ``refresh``.
Subscriber = Callable[[Any, str], None]


class Subscribers:
    """The callbacks of one History, called in the order they subscribed.

    A callback may unsubscribe (itself or another) while it is called: the
    notification goes on over the callbacks subscribed when it began.
    """

    def __init__(self) -> None:
        self._callbacks: list[Subscriber] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._callbacks)

    def add(self, callback: Subscriber) -> Callable[[], None]:
        """Subscribe ``callback``; returns the function that unsubscribes it."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def notify(self, history: Any, event: str) -> None:
        """Call every callback with ``(history, event)``; a callback that raises stops it."""
        for callback in list(self._callbacks):
            callback(history, event)
