"""Start and stop a private, offline JupyterLab server for browser tests.

Named ``lab_process`` rather than ``jupyter_server`` so that it can never
shadow the real ``jupyter_server`` package on ``sys.path``.

Example:
    >>> server = LabServer(notebook_dir, work_dir)   # doctest: +SKIP
    >>> server.start()                               # doctest: +SKIP
    >>> server.url                                   # doctest: +SKIP
    'http://127.0.0.1:40123'
    >>> server.stop()                                # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from processes import free_local_port, pids_mentioning, signal_group, signal_pid

_dev_spec = importlib.util.spec_from_file_location("dev_for_browser_tests", Path(__file__).resolve().parents[2] / "dev.py")
_dev = importlib.util.module_from_spec(_dev_spec)
_dev_spec.loader.exec_module(_dev)
# The server extensions `python3 dev.py lab` runs (saving notebooks readable without a kernel).
LAB_SERVER_EXTENSIONS = _dev.LAB_SERVER_EXTENSIONS

# Settings a user would click away; in a test they would make requests to the
# internet (news, update check, extension manager) or rewrite files (autosave).
LAB_SETTING_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
    # Every cell in the DOM, so locators and screenshots find cells off screen.
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}


# The Jupyter application of each front end, whose options the command line sets.
APPS = {"lab": "LabApp", "notebook": "JupyterNotebookApp"}


class LabServer:
    """A JupyterLab process serving ``notebook_dir`` on 127.0.0.1 only.

    Everything Jupyter writes (config, runtime files, settings, workspaces,
    IPython profile) goes under ``work_dir``, so the user's own Jupyter setup
    can neither change the test nor be changed by it. The kernel is the
    interpreter running this code (``sys.executable``).

    Args:
        notebook_dir (Path): Folder served as the JupyterLab root.
        work_dir (Path): Empty folder for Jupyter's own files and the log.
        app (str, optional): ``"lab"`` (JupyterLab) or ``"notebook"``
            (Jupyter Notebook 7, the same server and widget manager in
            Notebook's own page). Default: ``"lab"``.

    Example:
        >>> server = LabServer(Path("nbs"), Path("work"))  # doctest: +SKIP
        >>> server.start(); server.url                   # doctest: +SKIP
        'http://127.0.0.1:40123'
    """

    def __init__(self, notebook_dir: Path, work_dir: Path, app: str = "lab"):
        if app not in APPS:
            raise ValueError(f"Expected app 'lab' or 'notebook', got {app!r}.")
        self.app = app
        self.notebook_dir = Path(notebook_dir)
        self.work_dir = Path(work_dir)
        self.log_path = self.work_dir / "jupyterlab.log"
        self.port: int | None = None
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:40123``."""
        if self.port is None:
            raise RuntimeError("The JupyterLab server is not started; call start() first.")
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0, attempts: int = 3) -> None:
        """Start the server and wait until ``/api/status`` answers.

        Args:
            timeout (float, optional): Seconds to wait per attempt. Default: ``90``.
            attempts (int, optional): Ports to try, in case another process
                takes the free port first. Default: ``3``.
        """
        self._prepare_work_dir()
        for attempt in range(1, attempts + 1):
            self.port = free_local_port()
            self._launch()
            try:
                self._wait_until_ready(timeout)
                return
            except RuntimeError:
                self.stop()
                if attempt == attempts:
                    raise

    def stop(self) -> None:
        """Shut the server and its kernels down, forcefully if they linger."""
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.poll() is None:
            # SIGTERM makes Jupyter Server shut its kernels down cleanly.
            signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # Kernels run in sessions of their own, so the group signal misses them.
        for pid in pids_mentioning(str(self.work_dir / "runtime")):
            signal_pid(pid, signal.SIGKILL)

    def log_text(self) -> str:
        """Return everything the server wrote to stdout and stderr so far."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def _prepare_work_dir(self) -> None:
        for name in ("config", "runtime", "data", "settings", "workspaces", "ipython"):
            (self.work_dir / name).mkdir(parents=True, exist_ok=True)
        (self.work_dir / "settings" / "overrides.json").write_text(
            json.dumps(LAB_SETTING_OVERRIDES, indent=1)
        )
        # A kernelspec on JUPYTER_PATH (searched first) that names this exact
        # interpreter, so no system or user "python3" kernel can win.
        kernel_dir = self.work_dir / "path" / "kernels" / "python3"
        kernel_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        (kernel_dir / "kernel.json").write_text(json.dumps(spec, indent=1))

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(self.work_dir / "config"),
            JUPYTER_RUNTIME_DIR=str(self.work_dir / "runtime"),
            JUPYTER_DATA_DIR=str(self.work_dir / "data"),
            JUPYTER_PATH=str(self.work_dir / "path"),
            IPYTHONDIR=str(self.work_dir / "ipython"),
            PYTHONUNBUFFERED="1",
        )
        env.pop("JUPYTER_PLATFORM_DIRS", None)
        return env

    def _launch(self) -> None:
        app = APPS[self.app]
        command = [
            sys.executable, "-m", *(["jupyter", "lab"] if self.app == "lab" else ["notebook"]),
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.root_dir={self.notebook_dir}",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--allow-root",
            "--no-browser",
            f"--{app}.app_settings_dir={self.work_dir / 'settings'}",
            f"--{app}.workspaces_dir={self.work_dir / 'workspaces'}",
            f"--{app}.expose_app_in_browser=True",
            *(["--LabApp.news_url="] if self.app == "lab" else []),
            "--KernelSpecManager.ensure_native_kernel=True",
            "--LanguageServerManager.autodetect=False",
            *(f"--ServerApp.jpserver_extensions={name}={enabled}" for name, enabled in LAB_SERVER_EXTENSIONS.items()),
        ]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self._environment(),
                cwd=self.work_dir, start_new_session=True,
            )

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with code {self._process.returncode} before "
                    f"answering on {self.url}. Its log:\n{self.log_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                time.sleep(0.25)
        raise RuntimeError(
            f"JupyterLab did not answer {self.url}/api/status within {timeout:.0f} s. "
            f"Its log:\n{self.log_text()[-3000:]}"
        )

