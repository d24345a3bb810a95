# Tests the private module multiopt_lab._src.widgets.ipykernel_internals's own unit.
"""The adapter to ipykernel's private side (``multiopt_lab/_src/widgets/ipykernel_internals.py``), checked.

Each test checks one thing the adapter relies on against the installed
ipykernel and, when a new one changes it, fails naming the attribute
("ipykernel.kernelbase.Kernel no longer has _publish_status: ..."). A real
kernel drives the whole path in ``tests/test_subshell_status.py``; these run
in a second. The last test reads the package's source: no other module names
these attributes. (A test of a private module's own unit: it imports the
adapter itself.)
"""

from __future__ import annotations

import inspect
import threading

import pytest

ipykernel = pytest.importorskip("ipykernel")

from ipykernel.comm import Comm  # noqa: E402
from ipykernel.kernelbase import Kernel  # noqa: E402

from multiopt_lab._src.widgets import ipykernel_internals as internals  # noqa: E402
from private_reads import reads_outside  # noqa: E402

if int(ipykernel.__version__.split(".")[0]) < 7:
    pytest.skip(f"ipykernel {ipykernel.__version__} has no subshells: the widgets react between "
                "cells only, and none of these internals is read", allow_module_level=True)


def changed(attribute: str, found: str, need: str) -> str:
    """The failure message: which ipykernel attribute changed, how, and what of ours needs it."""
    return (f"ipykernel {ipykernel.__version__}: {attribute} {found}; multiopt_lab needs it to "
            f"{need} (adapt multiopt_lab/_src/widgets/ipykernel_internals.py)")


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_kernel_has_a_shell_channel_thread():
    assert "shell_channel_thread" in Kernel.class_trait_names(), changed(
        "ipykernel.kernelbase.Kernel", "no longer has shell_channel_thread",
        "find the thread that hands shell messages to subshells")


def test_the_shell_channel_thread_knows_the_main_thread_its_loop_and_its_manager():
    zmq = pytest.importorskip("zmq")
    from ipykernel.shellchannel import ShellChannelThread

    context = zmq.Context()
    try:
        channel = ShellChannelThread(context)
        try:
            assert internals.main_shell_thread(channel) is threading.current_thread(), changed(
                "ipykernel.shellchannel.ShellChannelThread", "no longer records parent_thread "
                "(the thread that made it)", "create subshells from the main shell only")
            assert callable(getattr(getattr(channel, "io_loop", None), "add_callback", None)), \
                changed("ipykernel.shellchannel.ShellChannelThread", "has no io_loop.add_callback",
                        "run the subshell manager on its own thread")
        finally:
            channel.io_loop.close()
    finally:
        context.term()
    assert isinstance(inspect.getattr_static(ShellChannelThread, "manager", None), property), \
        changed("ipykernel.shellchannel.ShellChannelThread", "has no manager property",
                "reach the subshell manager")


def test_the_subshell_manager_creates_a_subshell_without_arguments():
    from ipykernel.subshell_manager import SubshellManager

    create = getattr(SubshellManager, "_create_subshell", None)
    assert create is not None, changed("ipykernel.subshell_manager.SubshellManager",
                                       "no longer has _create_subshell", "create a subshell")
    assert parameters(create) == ["self"], changed(
        "ipykernel.subshell_manager.SubshellManager._create_subshell",
        f"takes {parameters(create)}", "create a subshell")


def test_the_kernel_publishes_statuses_through_one_method():
    publish = getattr(Kernel, "_publish_status", None)
    assert publish is not None, changed("ipykernel.kernelbase.Kernel",
                                        "no longer has _publish_status",
                                        "keep a subshell's statuses off the kernel's state")
    assert parameters(publish) == ["self", "status", "channel", "parent"], changed(
        "ipykernel.kernelbase.Kernel._publish_status", f"takes {parameters(publish)}",
        "keep a subshell's statuses off the kernel's state")
    assert parameters(Kernel.get_parent)[:2] == ["self", "channel"], changed(
        "ipykernel.kernelbase.Kernel.get_parent", f"takes {parameters(Kernel.get_parent)}",
        "read the message a status belongs to")


def test_every_comm_message_asks_the_comm_for_its_subshell():
    hook = getattr(Comm, "_reply_subshell_for", None)
    assert hook is not None, changed("ipykernel.comm.Comm", "no longer has _reply_subshell_for",
                                     "route a widget's messages to a subshell")
    assert parameters(hook) == ["self", "data", "default"], changed(
        "ipykernel.comm.Comm._reply_subshell_for", f"takes {parameters(hook)}",
        "route a widget's messages to a subshell")
    source = inspect.getsource(Kernel.shell_channel_thread_main)
    assert "_reply_subshell_for" in source, changed(
        "ipykernel.kernelbase.Kernel.shell_channel_thread_main",
        "no longer asks a comm's _reply_subshell_for", "route a widget's messages to a subshell")


def test_the_adapter_answers_none_outside_a_kernel():
    assert internals.running_kernel() is None
    assert internals.shell_channel(None) is None and internals.main_shell_thread(None) is None
    assert internals.create_subshell(object(), timeout=0.1) is None
    assert internals.wrap_status_publisher(object(), lambda publish: publish) is False
    assert internals.can_route(object()) is False


def test_a_status_publisher_is_wrapped_once():
    class FakeKernel:
        def _publish_status(self, status, channel, parent=None):
            return status

    kernel, wraps = FakeKernel(), []

    def wrap(publish):
        wraps.append(publish)
        return lambda status, channel, parent=None: publish(status, channel, parent) + "!"

    assert internals.wrap_status_publisher(kernel, wrap) is True
    assert internals.wrap_status_publisher(kernel, wrap) is True
    assert len(wraps) == 1 and kernel._publish_status("idle", "shell") == "idle!"


def test_no_other_module_reads_them():
    found = reads_outside("_src/widgets/ipykernel_internals.py", internals.PRIVATE_NAMES)
    assert not found, ("ipykernel's private attributes used outside "
                       "multiopt_lab/_src/widgets/ipykernel_internals.py (call a function of the "
                       "adapter instead):\n" + "\n".join(found))
