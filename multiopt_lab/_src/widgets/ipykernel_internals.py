"""ipykernel's private side, in one place: what the widgets use of a running kernel that ipykernel does not document.

Handling a widget's messages while a cell runs needs ipykernel 7's subshells
(threads with their own event loop, created by its subshell manager) and the
hook its shell channel thread asks, for every comm message, which subshell
handles it; keeping the kernel's status honest meanwhile needs the kernel's
status publisher. Every such read or write goes through a function here,
each saying what it relies on; :mod:`multiopt_lab._src.widgets.subshell` builds
the behaviour on them. ``tests/test_ipykernel_internals.py`` checks each
against the installed ipykernel, failing with the attribute's name, and that
no other module names them. Outside a kernel, or in an ipykernel without
subshells, each function answers None or False: the widgets then react
between cells only.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["running_kernel", "shell_channel", "main_shell_thread", "create_subshell",
           "wrap_status_publisher", "request_parent", "can_route", "route_comm",
           "PRIVATE_NAMES"]

#: The ipykernel attributes this module reads or writes; no other module of
#: the package may (``tests/test_ipykernel_internals.py`` scans them).
PRIVATE_NAMES = frozenset({"shell_channel_thread", "parent_thread", "_create_subshell",
                           "_publish_status", "_reply_subshell_for"})
_WRAPPED = "_multiopt_lab_wrapped"


def running_kernel() -> Any | None:
    """The kernel of the running IPython shell (``get_ipython().kernel``), or None outside one.

    Looks only at an IPython already imported: importing it here would load
    it into a plain Python process.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None)


def shell_channel(kernel: Any) -> Any | None:
    """The thread that reads the kernel's shell channel (``Kernel.shell_channel_thread``), or None.

    ipykernel 7 reads shell messages on that thread and hands each to the
    main shell or to a subshell; before 7 there is none (no subshells).
    """
    return getattr(kernel, "shell_channel_thread", None)


def main_shell_thread(channel: Any) -> threading.Thread | None:
    """The thread of the kernel's main shell (``ShellChannelThread.parent_thread``), or None.

    Why: subshells are created from that thread only, and statuses it
    publishes are the cell's.
    """
    return getattr(channel, "parent_thread", None)


def create_subshell(channel: Any, timeout: float = 5.0) -> str | None:
    """A new subshell of the kernel, by id; None if ipykernel could not make one in ``timeout`` s.

    What a front end's ``create_subshell_request`` does, without a front end:
    ``channel.manager._create_subshell()``, run on the shell channel's own
    thread (``channel.io_loop.add_callback``; the manager refuses any other).
    Call it from the main shell's thread (``channel.manager`` is built there).
    """
    try:
        manager = channel.manager
        created: dict[str, str] = {}
        ready = threading.Event()

        def create() -> None:
            try:
                created["id"] = manager._create_subshell()
            finally:
                ready.set()

        channel.io_loop.add_callback(create)
        if not ready.wait(timeout):
            return None
    except Exception:  # a kernel whose internals differ: no subshell, never an error
        return None
    return created.get("id")


def wrap_status_publisher(kernel: Any, wrap: Callable[[Callable], Callable]) -> bool:
    """Replace ``kernel._publish_status(status, channel, parent=None)`` by ``wrap(original)``, once.

    ipykernel publishes every ``busy`` and ``idle`` on IOPub through it, the
    subshells' too. Returns False for a kernel without it (left as it is);
    True when wrapped now or before (a second call changes nothing).
    """
    publish = getattr(kernel, "_publish_status", None)
    if publish is None:
        return False
    if getattr(publish, _WRAPPED, False):
        return True
    wrapped = wrap(publish)
    setattr(wrapped, _WRAPPED, True)
    kernel._publish_status = wrapped
    return True


def request_parent(kernel: Any, channel: str) -> dict:
    """The message the kernel handles on ``channel`` on this thread (``Kernel.get_parent``).
    """
    return kernel.get_parent(channel)


def can_route(comm: Any) -> bool:
    """Whether ``comm`` has the hook ipykernel 7 asks which subshell handles its messages.
    """
    return comm is not None and hasattr(comm, "_reply_subshell_for")


def route_comm(comm: Any, choose: Callable[[Any, str | None], str | None]) -> None:
    """Have ``choose(data, default)`` pick the subshell of each message to ``comm``.

    Sets ``Comm._reply_subshell_for``, which ipykernel's shell channel
    thread calls for every ``comm_msg`` and ``comm_close`` with the message's
    data and the subshell the message names (None: the main shell).
    """
    comm._reply_subshell_for = choose
