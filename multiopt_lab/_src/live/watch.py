"""Notice when a MultiOptimizer changed its routing, from the kernel's event loop.

``MultiOptimizer.version`` goes up whenever its routing changes (a
repartition, a new parameter structure). A :class:`VersionWatcher` reads that
plain integer every ``seconds`` on the running asyncio loop (never touching an
MLX array, which a training thread may be using) and calls back on a change.
Without a running loop (a script, a unit test) it does nothing; call
:meth:`check` by hand there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["VersionWatcher"]


class VersionWatcher:
    """Call ``callback`` when ``source.version`` changes.

    Args:
        source: An object with an integer ``version`` (a ``MultiOptimizer``); other
            objects are never reported as changed.
        callback (Callable[[], None]): Called on the kernel's thread after a change.
        seconds (float, optional): Polling period; ``<= 0`` disables polling. Default: ``1.0``.
        alive (Callable[[], bool], optional): Polling stops once this returns False
            (e.g. the widget was closed). Default: always alive.
    """

    def __init__(self, source, callback: Callable[[], None], seconds: float = 1.0,
                 alive: Callable[[], bool] = lambda: True):
        self.source = source
        self.callback = callback
        self.seconds = seconds
        self.alive = alive
        self.seen = getattr(source, "version", None)
        if seconds > 0:
            try:
                asyncio.get_running_loop().call_later(seconds, self._poll)
            except RuntimeError:
                pass

    def check(self) -> bool:
        """Call back now if the version moved since the last look; return whether it did."""
        version = getattr(self.source, "version", None)
        if version == self.seen:
            return False
        self.seen = version
        self.callback()
        return True

    def _poll(self) -> None:
        if not self.alive():
            return
        self.check()
        asyncio.get_running_loop().call_later(self.seconds, self._poll)
