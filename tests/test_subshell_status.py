# Tests the private module multiopt_lab._src.widgets.subshell's own unit.
"""A kernel stays busy while a cell runs, even as a subshell handles widget messages.

Drives a real ipykernel as JupyterLab would (a comm message per click) and
replays the status messages it publishes through jupyter_server's own rule
for a kernel's ``execution_state`` (the rule JupyterLab's status bar follows
too, with the same list of untracked message types). The browser test
``tests/browser/test_kernel_status_in_lab.py`` checks the same in JupyterLab.
"""

import queue
import time

import pytest

pytest.importorskip("ipykernel")

SETUP = """
import time
import ipywidgets
from multiopt_lab._src.widgets.subshell import route_to_subshell
button = ipywidgets.Button(description="Stop")
clicks = []
button.on_click(lambda _: clicks.append(time.monotonic()))
print("ROUTED", route_to_subshell(button), button.comm.comm_id, flush=True)
"""
LONG_CELL = "time.sleep(4); print('CLICKS', len(clicks))"


def untracked_message_types() -> list[str]:
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

    return list(MappingKernelManager.untracked_message_types.default())


def server_state(statuses: list[dict], untracked: list[str], state: str) -> list[str]:
    """The kernel's ``execution_state`` after each status, from ``state``, by jupyter_server's rule."""
    states = []
    for msg in statuses:
        if msg["parent_header"].get("msg_type") not in untracked:
            state = msg["content"]["execution_state"]
        states.append(state)
    return states


def click(client, comm_id: str) -> str:
    """Send what JupyterLab sends when a button is clicked; return the message id."""
    content = {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
    msg = client.session.msg("comm_msg", content)
    client.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def collect(client, until, seconds: float = 60) -> list[dict]:
    """IOPub messages until ``until(messages)`` holds."""
    messages, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            messages.append(client.get_iopub_msg(timeout=0.2))
        except queue.Empty:
            continue
        if until(messages):
            return messages
    pytest.fail(f"no end within {seconds} s; got {[(m['msg_type'], m['content']) for m in messages][-10:]}")


def idle_for(msg_id: str):
    return lambda messages: any(m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
                                and m["parent_header"].get("msg_id") == msg_id for m in messages)


@pytest.mark.slow
def test_statuses_of_widget_messages_mid_cell_leave_the_kernel_busy():
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=60)
    try:
        setup = client.execute(SETUP)
        messages = collect(client, idle_for(setup))
        printed = "".join(m["content"].get("text", "") for m in messages if m["msg_type"] == "stream")
        assert "ROUTED True" in printed, printed
        comm_id = printed.split("ROUTED True ")[1].split()[0]

        cell = client.execute(LONG_CELL)
        collect(client, lambda ms: any(m["msg_type"] == "status" and m["parent_header"].get("msg_id") == cell
                                       and m["content"]["execution_state"] == "busy" for m in ms))
        clicked = click(client, comm_id)
        during = collect(client, idle_for(cell))
        statuses = [m for m in during if m["msg_type"] == "status"]
        printed = "".join(m["content"].get("text", "") for m in during if m["msg_type"] == "stream")
        assert "CLICKS 1" in printed, "the click was not handled while the cell ran"

        # The kernel's state, by jupyter_server's rule, stays busy until the cell's own idle...
        states = server_state(statuses, untracked_message_types(), "busy")
        assert states[:-1] == ["busy"] * (len(states) - 1) and states[-1] == "idle", list(zip(
            [(m["parent_header"].get("msg_type"), m["content"]["execution_state"]) for m in statuses], states))
        # ...and the front end that clicked still sees its message finish (ipywidgets waits for that idle).
        for_click = [m for m in statuses if m["parent_header"].get("msg_id") == clicked]
        assert [m["content"]["execution_state"] for m in for_click] == ["busy", "idle"]
        assert all(m["parent_header"]["subshell_msg_type"] == "comm_msg" for m in for_click)

        # With the main shell idle, a widget message is the kernel's only work and shows as such.
        clicked = click(client, comm_id)
        after = [m for m in collect(client, idle_for(clicked)) if m["msg_type"] == "status"
                 and m["parent_header"].get("msg_id") == clicked]
        assert [(m["parent_header"]["msg_type"], m["content"]["execution_state"]) for m in after] == [
            ("comm_msg", "busy"), ("comm_msg", "idle")]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
