"""One rank's side of a data-parallel run: say how it ended, never hang.

When one rank raises, the others are usually blocked in a collective
(``all_sum``) waiting for it. MLX's ring backend notices a closed socket and
fails them too, but a rank that hangs without dying (a deadlock, a stuck
data loader, a peer on a dead network) would keep them waiting forever.
:class:`RankGuard` writes a one-line status per rank (read by
:func:`multiopt_lab.launch` to name the rank that
failed first) and runs a watchdog that stops the rank when no step finishes
in time.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Literal

import mlx.core as mx

from multiopt_lab._src.arguments import checked, found, is_path, number, optional
from multiopt_lab._src.distributed.status import RUN_DIR_ENV, OtherRankFailed, status_path
from multiopt_lab._src.io.atomic import write_text_atomically

__all__ = ["RankGuard", "WATCHDOG_EXIT_CODE"]

#: Exit code of a rank stopped by its watchdog (as GNU ``timeout``).
WATCHDOG_EXIT_CODE = 124


class RankGuard:
    """Context manager around one rank's training loop.

    On leaving, it writes ``{"rank", "ok", "step", "error", "consequence", "time"}`` to
    ``rank-<r>.json`` in the run folder (``$MULTIOPT_LAB_RUN_DIR``, set by
    ``launch``; nothing is written without one) and, on an exception, prints
    one line naming the rank and step to stderr before the traceback. With
    ``step_timeout_s``, a watchdog thread ends the process (exit code
    ``124``) when :meth:`beat` is not called for that long: the launcher then
    stops the other ranks instead of letting them wait forever.

    Args:
        group (mlx.core.distributed.Group, optional): Gives this rank's
            number. Default: ``None`` (``mx.distributed.init()``).
        step_timeout_s (float, optional): Longest time allowed between two
            :meth:`beat` calls (and before the first). Default: ``None``
            (no watchdog).
        run_dir (str, optional): Folder for the status file. Default:
            ``None`` (``$MULTIOPT_LAB_RUN_DIR``).

    Example:
        >>> with RankGuard(step_timeout_s=60) as guard:
        ...     for step in range(3):
        ...         guard.beat(step)
        >>> guard.step
        2
    """

    @checked(step_timeout_s=optional(number(low=0, low_open=True)), run_dir=optional(is_path))
    def __init__(
        self,
        group: mx.distributed.Group | None = None,
        *,
        step_timeout_s: float | None = None,
        run_dir: str | os.PathLike | None = None,
    ):
        if group is not None and not isinstance(group, mx.distributed.Group):
            raise TypeError(f"RankGuard(): group must be an mx.distributed.Group (what "
                            f"mx.distributed.init() returns) or None, found {found(group)}")
        group = group if group is not None else mx.distributed.init()
        self.rank, self.size = group.rank(), group.size()
        self.step_timeout_s = step_timeout_s
        run_dir = run_dir if run_dir is not None else os.environ.get(RUN_DIR_ENV)
        self.run_dir = Path(run_dir) if run_dir else None
        self.step: int | None = None
        self._last_beat = self._last_write = time.monotonic()
        self._done = threading.Event()

    def beat(self, step: int) -> None:
        """Record that ``step`` finished (call it after the step's ``mx.eval``).

        The status file is rewritten at most once a second, so a launcher
        that stops a stuck run can say how far each rank got.
        """
        first = self.step is None
        self.step = step
        self._last_beat = time.monotonic()
        if first or self._last_beat - self._last_write >= 1.0:
            self._write_status(ok=None, error=None)

    def __enter__(self) -> RankGuard:
        self._last_beat = time.monotonic()
        self._write_status(ok=None, error=None)
        if self.step_timeout_s is not None:
            threading.Thread(target=self._watch, name="RankGuard", daemon=True).start()
        return self

    def __exit__(self, exc_type, exc, _traceback) -> Literal[False]:
        self._done.set()
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            self._write_status(ok=True, error=None)
            return False
        error = f"{exc_type.__name__}: {exc}".strip()
        self._write_status(ok=False, error=error, consequence=isinstance(exc, OtherRankFailed))
        print(f"[multiopt_lab] rank {self.rank} failed {self._where()}: {error}",
              file=sys.stderr, flush=True)
        return False

    def _where(self) -> str:
        return "before its first step" if self.step is None else f"after step {self.step}"

    def _watch(self) -> None:
        timeout = self.step_timeout_s
        assert timeout is not None  # the watchdog starts only with a timeout
        while not self._done.wait(min(1.0, timeout / 4)):
            waited = time.monotonic() - self._last_beat
            if waited > timeout:
                error = (
                    f"no step finished within {self.step_timeout_s:g} s; another "
                    "rank probably failed or hung while this one waited for it "
                    "in a collective (all_sum). Stopping this rank."
                )
                self._write_status(ok=False, error=error, timed_out=True)
                print(f"[multiopt_lab] rank {self.rank} {self._where()}: {error}",
                      file=sys.stderr, flush=True)
                # The main thread is blocked inside MLX and cannot be
                # interrupted; only ending the process frees it.
                os._exit(WATCHDOG_EXIT_CODE)

    def _write_status(self, *, ok: bool | None, error: str | None, timed_out=False,
                      consequence=False) -> None:
        self._last_write = time.monotonic()
        if self.run_dir is None:
            return
        status = {
            "rank": self.rank, "size": self.size, "ok": ok, "step": self.step,
            "error": error, "timed_out": timed_out, "consequence": consequence,
            "time": time.time(),
            "pid": os.getpid(),
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Atomic: the launcher never reads half a file, even from the watchdog's thread.
        write_text_atomically(status_path(self.run_dir, self.rank), json.dumps(status),
                              durable=False)
