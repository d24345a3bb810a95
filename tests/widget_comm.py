"""Testing widgets without a browser: a comm that records what the kernel sends.

``recorded_comm`` (in ``conftest.py``) swaps every widget's comm for
ipywidgets' own ``DummyComm``; these helpers read it back and act as the
browser would.
"""


def sent(widget, name):
    """Every value of ``name`` the kernel sent to the browser for ``widget``."""
    return [kw["data"]["state"][name] for _, kw in widget.comm.messages
            if kw.get("data", {}).get("method") == "update" and name in kw["data"]["state"]]


def click(button):
    """Click ``button`` with the message the browser sends."""
    button._handle_custom_msg({"event": "click"}, [])


def copy_click(button, outcome="copied", reason=""):
    """Click a CopyButton as the browser reports it: the clipboard ``outcome`` and its reason."""
    button._handle_custom_msg({"event": "copy", "outcome": outcome, "reason": reason}, [])
