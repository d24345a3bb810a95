"""Process helpers for the browser harness: free ports, signals, finding our own kernels."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def free_local_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now.

    Example:
        >>> 1024 < free_local_port() < 65536
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group led by ``pid``; ignore one that is gone.

    Example:
        >>> signal_group(server_pid, signal.SIGTERM)  # doctest: +SKIP
    """
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_pid(pid: int, sig: int) -> None:
    """Send ``sig`` to the process ``pid``; ignore one that is gone.

    Example:
        >>> signal_pid(kernel_pid, signal.SIGKILL)  # doctest: +SKIP
    """
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def pids_mentioning(text: str) -> list[int]:
    """Ids of processes whose command line contains ``text`` (Linux only; else ``[]``).

    Used with a unique temporary folder name, so it finds only our own kernels.

    Example:
        >>> pids_mentioning("/no/such/folder/anywhere")
        []
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command_line = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in command_line:
            found.append(int(entry.name))
    return found
