"""Widget messages handled on a kernel subshell, so a widget acts while a cell runs.

A kernel handles widget messages (a click, a keystroke) on its main thread,
which is busy while a cell trains, so a plain handler runs only after the
cell ends. ipykernel 7 can run *subshells*: threads with their own event
loop. Routing a widget's comm to one (through the hook ipykernel 7.x
consults for every incoming comm message) has its messages handled at once,
on that thread. What this needs of ipykernel's private side is read in one
module, :mod:`multiopt_lab._src.widgets.ipykernel_internals`. Checked against
ipykernel 7.4 with a real kernel (``tests/test_subshell_status.py``) and in
JupyterLab (``tests/browser/test_training_in_lab.py``).

The kernel's status while a cell runs. A subshell publishes ``busy`` and
``idle`` on IOPub for every message it handles, with that message as the
parent. jupyter_server (``/api/kernels``) and JupyterLab (its status bar,
``kernel.status``) take any status whose parent type is not in
``untracked_message_types`` as the state of the whole kernel, and know
nothing of subshells: the first widget message handled mid-cell turned the
kernel Idle while the cell still trained. The statuses cannot simply be
dropped: ipywidgets sends a model's next update only once the previous
message's ``idle`` arrived (matched by the parent's ``msg_id``). So while the
main shell is busy, a subshell's statuses for comm messages go out with the
parent's ``msg_type`` replaced by ``comm_info_request`` (its ``msg_id``, and
so the front end's wait, unchanged): a type both jupyter_server's default
``untracked_message_types`` and JupyterLab (which reads the same list) leave
out of the kernel's state. The original type stays in the parent header as
``subshell_msg_type``. When the main shell is idle, nothing changes: handling
a widget message is then the kernel's only work and shows as such.
(``tests/browser/test_kernel_status_in_lab.py``.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import ipywidgets

from multiopt_lab._src.widgets.ipykernel_internals import (can_route, create_subshell,
                                                      main_shell_thread, request_parent,
                                                      route_comm, running_kernel, shell_channel,
                                                      wrap_status_publisher)

__all__ = ["route_to_subshell", "keep_statuses_off_the_kernel_state"]

_subshell_lock = threading.Lock()
_subshell: dict[int, str] = {}

#: Messages a front end sends to a comm; their statuses on a subshell are kept
#: out of the kernel's state while the main shell is busy.
COMM_MESSAGES = frozenset({"comm_open", "comm_msg", "comm_close"})
#: A parent type that jupyter_server's default ``untracked_message_types`` (and
#: JupyterLab, which is given the same list) leave out of the kernel's state.
UNTRACKED_PARENT_TYPE = "comm_info_request"


def _kernel_subshell() -> str | None:
    """A subshell of the running kernel (created once), or None where there is none."""
    kernel = running_kernel()
    channel = shell_channel(kernel)
    main_thread = main_shell_thread(channel)
    if channel is None or threading.current_thread() is not main_thread:
        return None
    with _subshell_lock:
        if id(kernel) in _subshell:
            return _subshell[id(kernel)]
        created = create_subshell(channel)
        if created is None:  # a kernel whose internals differ: fall back, never break training
            return None
        keep_statuses_off_the_kernel_state(kernel, main_thread)
        _subshell[id(kernel)] = created
        return created


def keep_statuses_off_the_kernel_state(kernel, main_thread: threading.Thread) -> bool:
    """Have ``kernel``'s subshells report comm messages without moving the kernel's state.

    Wraps the kernel's status publisher once: the main thread's statuses
    are followed (busy from its ``busy`` to its ``idle``), and while it is busy
    a status published on any other thread for a comm message carries a
    parent header whose ``msg_type`` is :data:`UNTRACKED_PARENT_TYPE` (the
    original kept as ``subshell_msg_type``, the ``msg_id`` unchanged). Must be
    called on the main thread while it handles a request (a cell), as
    :func:`route_to_subshell` is.

    Args:
        kernel: The running ``ipykernel`` kernel.
        main_thread (threading.Thread): The thread of the main shell.

    Returns:
        bool: ``True`` if the statuses are now kept off (or already were),
        ``False`` for a kernel without a status publisher (left as it is).
    """
    # Called on the main thread in the middle of a request: the main shell is busy.
    main_busy = [True]

    def keeping_off(publish: Callable) -> Callable:
        def publish_status(status, channel, parent=None):
            if channel == "shell":
                if threading.current_thread() is main_thread:
                    main_busy[0] = status == "busy"
                elif main_busy[0]:
                    parent = parent or request_parent(kernel, channel)
                    header = parent.get("header") or {}
                    if header.get("msg_type") in COMM_MESSAGES:
                        parent = {**parent, "header": {**header,
                                                       "msg_type": UNTRACKED_PARENT_TYPE,
                                                       "subshell_msg_type": header["msg_type"]}}
            return publish(status, channel, parent)
        return publish_status

    return wrap_status_publisher(kernel, keeping_off)


def route_to_subshell(widget: ipywidgets.Widget, when: Callable[[], bool] | None = None) -> bool:
    """Have ``widget``'s messages from the front end handled on a kernel subshell.

    Args:
        widget (ipywidgets.Widget): The widget whose messages to route.
        when (Callable[[], bool], optional): Route a message only while this
            returns True (asked as each message arrives); otherwise it goes
            to the main thread as usual. Default: always.

    Returns:
        bool: ``True`` if the routing is in place, ``False`` where the kernel
        cannot (the widget then only reacts between cells).
    """
    subshell = _kernel_subshell()
    comm = getattr(widget, "comm", None)
    if subshell is None or not can_route(comm):
        return False
    if when is None:
        route_comm(comm, lambda data, default: subshell)
    else:
        route_comm(comm, lambda data, default: subshell if when() else default)
    return True
