"""Widget messages handled on a kernel subshell, so a widget acts while a cell runs.

A kernel handles widget messages (a click, a keystroke) on its main thread,
which is busy while a cell trains, so a plain handler runs only after the
cell ends. ipykernel 7 can run *subshells*: threads with their own event
loop. Routing a widget's comm to one (through ``Comm._reply_subshell_for``,
which ipykernel 7.x consults for every incoming comm message) has its
messages handled at once, on that thread. Checked against ipykernel 7.4 with
a real kernel (``tests/test_monitor.py``) and in JupyterLab
(``tests/browser/test_training_in_lab.py``).

Example:
    >>> import ipywidgets
    >>> route_to_subshell(ipywidgets.Button())   # outside a kernel: nothing to route
    False
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import ipywidgets

__all__ = ["route_to_subshell"]

_subshell_lock = threading.Lock()
_subshell: dict[int, str] = {}


def _kernel_subshell() -> str | None:
    """A subshell of the running kernel (created once), or None where there is none."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    kernel = getattr(shell, "kernel", None)
    channel = getattr(kernel, "shell_channel_thread", None)
    if channel is None or threading.current_thread() is not getattr(channel, "parent_thread", None):
        return None
    with _subshell_lock:
        if id(kernel) in _subshell:
            return _subshell[id(kernel)]
        try:
            manager = channel.manager
            created: dict[str, str] = {}
            ready = threading.Event()

            def create() -> None:
                # The manager only creates subshells on the shell channel thread.
                try:
                    created["id"] = manager._create_subshell()
                finally:
                    ready.set()

            channel.io_loop.add_callback(create)
            if not ready.wait(5.0) or "id" not in created:
                return None
        except Exception:  # a kernel whose internals differ: fall back, never break training
            return None
        _subshell[id(kernel)] = created["id"]
        return created["id"]


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

    Example:
        >>> import ipywidgets
        >>> route_to_subshell(ipywidgets.Text(), when=lambda: False)
        False
    """
    subshell = _kernel_subshell()
    comm = getattr(widget, "comm", None)
    if subshell is None or comm is None or not hasattr(comm, "_reply_subshell_for"):
        return False
    if when is None:
        comm._reply_subshell_for = lambda data, default: subshell
    else:
        comm._reply_subshell_for = lambda data, default: subshell if when() else default
    return True
