"""The status file each rank of a data-parallel run leaves behind.

:class:`~multiopt_lab.RankGuard` writes
``rank-<r>.json`` into the run folder (``$MULTIOPT_LAB_RUN_DIR``);
:func:`~multiopt_lab.launch` reads them, with the
launcher's own messages for ranks that wrote none, to say which rank failed
first.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

__all__ = ["RUN_DIR_ENV", "OtherRankFailed", "status_path", "read_status", "failure_lines",
           "progress_lines"]

#: Environment variable naming the folder where ranks write their status.
RUN_DIR_ENV = "MULTIOPT_LAB_RUN_DIR"

# What mlx.launch prints when a rank ends badly (MLX 0.32).
_NODE_EXIT = re.compile(r"Node with rank (\d+) (?:exited with code (-?\d+)|was killed)")
# mlx.launch stops the other ranks with SIGTERM ("was killed", or code -15 when the
# rank was already gone). SIGKILL (-9) never comes from it: the OOM killer, a user.
_STOPPED_BY_LAUNCHER = (None, "-15")


class OtherRankFailed(RuntimeError):
    """Raised on the ranks that stop because another rank failed (its error is the cause).

    :class:`~multiopt_lab.RankGuard` marks such a failure
    as a consequence, so the launcher names the rank that failed first even
    when a consequence was reported a moment earlier.
    """


def status_path(run_dir: str | os.PathLike, rank: int) -> Path:
    """Where rank ``rank`` writes its status JSON inside ``run_dir``.
    """
    return Path(run_dir) / f"rank-{rank}.json"


def read_status(run_dir: str | os.PathLike, rank: int) -> dict | None:
    """Rank ``rank``'s last status in ``run_dir``, or ``None`` if it wrote none.

    ``ok`` is ``None`` while the rank runs (or if it died without a word),
    ``True`` when it finished, ``False`` when it failed.
    """
    try:
        return json.loads(status_path(run_dir, rank).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def failure_lines(statuses: list, launcher_stderr: str) -> list[str]:
    """One line per failed rank, the cause first.

    Ranks that died without a word (killed by a signal such as the OOM
    killer's SIGKILL, a crash, ``os._exit``) come first; then ranks that
    reported their own error, by when they failed; then ranks that stopped
    because another one failed (:class:`OtherRankFailed`, a watchdog that saw
    no step finish); last the ranks the launcher stopped.

    Args:
        statuses (list): One status dict (or ``None``) per rank.
        launcher_stderr (str): ``mlx.launch``'s stderr, for the ranks that
            wrote no status.
    """
    exits = {int(m[1]): m[2] for m in _NODE_EXIT.finditer(launcher_stderr)}
    found = []
    for rank, status in enumerate(statuses):
        if status and status.get("ok") is False:
            consequence = bool(status.get("consequence") or status.get("timed_out"))
            found.append((1 if consequence else 0, _time(status),
                          f"rank {rank} failed {_where(status)}: {status.get('error')}"))
        elif rank in exits and not (status and status.get("ok")):
            code = exits[rank]
            if code in _STOPPED_BY_LAUNCHER:
                found.append((2, 0.0, f"rank {rank} was stopped by the launcher"))
            elif code is not None and code.startswith("-"):
                found.append((-1, _time(status), f"rank {rank} was killed by "
                              f"{_signal_name(int(code[1:]))} {_where(status)}"))
            else:
                found.append((-1, _time(status), f"rank {rank} exited with code {code} "
                              "without reporting an error"))
    return [text for *_, text in sorted(found, key=lambda item: item[:2])]


def _time(status: dict | None) -> float:
    value = status.get("time") if status else None
    return float(value) if isinstance(value, (int, float)) else 0.0


def _signal_name(number: int) -> str:
    if number == 9:
        return "signal 9 (SIGKILL: the out-of-memory killer, or a user)"
    try:
        import signal

        return f"signal {number} ({signal.Signals(number).name})"
    except ValueError:
        return f"signal {number}"


def progress_lines(statuses: list) -> list[str]:
    """Where each rank was, for a run stopped at its time limit.
    """
    lines = []
    for rank, status in enumerate(statuses):
        if status is None:
            lines.append(f"rank {rank} never reported (it may not use RankGuard)")
        elif status["ok"] is None:
            lines.append(f"rank {rank} was still running, last report {_where(status)}")
        else:
            state = "finished" if status["ok"] else "failed"
            lines.append(f"rank {rank} had {state} {_where(status)}")
    return lines


def _where(status: dict | None) -> str:
    if status is None or status.get("step") is None:
        return "before its first step"
    return f"after step {status['step']}"
