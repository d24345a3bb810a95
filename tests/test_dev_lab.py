"""``python3 dev.py lab`` opens a JupyterLab without the news pop-up, leaving the user's settings alone."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTIFICATIONS = "@jupyterlab/apputils-extension:notification"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


@pytest.mark.slow
def test_the_lab_it_opens_asks_no_news_question(tmp_path):
    home = {name: tmp_path / name for name in ("config", "data", "runtime")}
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home["config"]), "JUPYTER_DATA_DIR": str(home["data"]),
           "JUPYTER_RUNTIME_DIR": str(home["runtime"])}
    port = free_port()
    command = [sys.executable, str(ROOT / "dev.py"), "lab", "--no-browser", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=",
               "--ServerApp.password="]
    with open(tmp_path / "lab.log", "wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
            try:
                read_json(f"{url}/api/status")
                break
            except OSError:
                assert time.monotonic() < deadline, "JupyterLab did not start in 120 s"
                time.sleep(0.5)
        # Overrides become the defaults the front end starts from ("none" asks the question).
        defaults = read_json(f"{url}/lab/api/settings/{NOTIFICATIONS}")["schema"]["properties"]
        assert defaults["fetchNews"]["default"] == "false" and defaults["checkForUpdates"]["default"] is False
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server we started, and its kernels
        server.wait(timeout=30)
    # Nothing of it went into the user's own Jupyter settings.
    assert not (home["config"] / "lab" / "user-settings").exists()


def test_the_lab_it_opens_saves_notebooks_readable_without_a_kernel(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("dev_under_test", ROOT / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    command = dev.lab_command([f"--LabApp.app_settings_dir={tmp_path}"])
    assert "--ServerApp.jpserver_extensions=multiopt_lab.widgets.saved_notebooks=True" in command
    # The extension module is what jupyter_server loads: it names itself and registers the hook.
    from multiopt_lab.widgets import saved_notebooks

    assert saved_notebooks._jupyter_server_extension_points() == [{"module": "multiopt_lab.widgets.saved_notebooks"}]
    # A user's own choice of extensions wins.
    assert not any("saved_notebooks" in part for part in dev.lab_command(
        [f"--LabApp.app_settings_dir={tmp_path}", "--ServerApp.jpserver_extensions=x=True"]))
