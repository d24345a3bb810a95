#!/usr/bin/env python3
"""Set up everything and run multiopt_lab's two jobs: the lab and the tests.

    python3 dev.py lab      # virtual environment + JupyterLab on notebooks/
    python3 dev.py test     # virtual environment + every test (unit, notebooks, browser)

Both create ``.venv`` next to this file on first use and reinstall the
dependencies only when ``pyproject.toml`` changes. Nothing else needs to be
installed by hand: the test job also installs Debian's ``chromium`` with
``apt-get`` when it is missing and the machine allows it (root, Debian).

The lab gets a JupyterLab settings folder of its own in ``.venv`` (the news
pop-up and the update check turned off); the user's own settings stay as they are.
It saves notebooks readable without a kernel: each widget output keeps its
text, HTML and PNG forms, not the live view that only the running kernel can
draw (``multiopt_lab.widgets.saved_notebooks``).

Extra arguments after ``lab`` go to ``jupyter lab``; after ``test`` they go to
pytest (``python3 dev.py test -k rules -x``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".multiopt_lab-deps"
PACKAGE_STAMP = VENV / ".multiopt_lab-package"
CHROMIUM = Path(os.environ.get("MULTIOPT_LAB_CHROMIUM", "/usr/bin/chromium"))
# JupyterLab's own settings folder in the environment, and the one `lab` gives it
# instead: the same files, plus the overrides below (the user's settings stay as they are).
VENV_LAB_SETTINGS = VENV / "share" / "jupyter" / "lab" / "settings"
LAB_SETTINGS = VENV / "multiopt_lab-lab-settings"
LAB_OVERRIDES = {
    # No "Would you like to receive official Jupyter news?" pop-up, no update check.
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}
# Server extensions the lab runs: notebooks are saved with their widgets' static
# forms instead of views that need the kernel, so a saved notebook reopens readable
# in JupyterLab, Notebook 7 and nbconvert's HTML (multiopt_lab/widgets/saved_notebooks.py).
LAB_SERVER_EXTENSIONS = {"multiopt_lab.widgets.saved_notebooks": True}


def say(message: str) -> None:
    print(f"[dev.py] {message}", flush=True)


def run(*command: str | Path, **kwargs) -> None:
    subprocess.run([str(c) for c in command], check=True, **kwargs)


def create_venv() -> None:
    if VENV_PYTHON.exists():
        return
    say(f"creating the virtual environment {VENV}")
    result = subprocess.run([sys.executable, "-m", "venv", str(VENV)])
    if result.returncode != 0:
        # Debian ships venv separately (python3-venv); install it when we can.
        shutil.rmtree(VENV, ignore_errors=True)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        if os.geteuid() == 0 and shutil.which("apt-get"):
            say(f"python{version}-venv is missing; installing it with apt-get")
            run("apt-get", "update", "-qq")
            run("apt-get", "install", "-y", "-qq", f"python{version}-venv")
            run(sys.executable, "-m", "venv", VENV)
        else:
            sys.exit(
                "dev.py: `python3 -m venv` failed. On Debian/Ubuntu install it with "
                f"`sudo apt-get install python{version}-venv` and run this again."
            )


BACKENDS = ("cpu", "cuda12", "cuda13", "metal")


def cuda_major_version() -> int | None:
    """The highest CUDA major version the NVIDIA driver supports, or None without one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        output = subprocess.run([smi], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"CUDA Version:\s*(\d+)", output)
    return int(found.group(1)) if found else None


def choose_backend() -> tuple[str, str]:
    """(backend, why): MULTIOPT_LAB_BACKEND if set, else what this machine can run."""
    forced = os.environ.get("MULTIOPT_LAB_BACKEND")
    if forced:
        if forced not in BACKENDS:
            sys.exit(f"dev.py: MULTIOPT_LAB_BACKEND={forced!r} is not one of {', '.join(BACKENDS)}")
        return forced, "MULTIOPT_LAB_BACKEND"
    if platform.system() == "Darwin":
        return "metal", "macOS (plain mlx brings Metal)"
    cuda = cuda_major_version()
    if cuda is not None and cuda >= 13:
        return "cuda13", f"NVIDIA driver for CUDA {cuda}"
    if cuda == 12:
        return "cuda12", "NVIDIA driver for CUDA 12"
    if cuda is not None:
        return "cpu", f"NVIDIA driver for CUDA {cuda}, older than MLX needs (12)"
    return "cpu", "no NVIDIA driver (nvidia-smi) found"


def install_dependencies() -> None:
    """Install the package's dependencies when pyproject.toml or the backend changed."""
    backend, why = choose_backend()
    say(f"MLX backend: {backend} ({why}; set MULTIOPT_LAB_BACKEND to choose another)")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    wanted = f"{digest} {backend}"
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    say("installing dependencies (first run, pyproject.toml or the backend changed)")
    pip = [VENV_PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run(*pip, "--upgrade", "pip", "setuptools", "wheel")
    extras = "lab,test" if backend == "metal" else f"lab,test,{backend}"
    if STAMP.exists():
        # Another backend may be installed: two of them would fight over libmlx.
        others = [f"mlx-{b.replace('cuda', 'cuda-')}" for b in ("cpu", "cuda12", "cuda13")
                  if b != backend]
        run(VENV_PYTHON, "-m", "pip", "uninstall", "--quiet", "-y", *others,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run(*pip, f"{ROOT}[{extras}]")
    STAMP.write_text(wanted)
    PACKAGE_STAMP.unlink(missing_ok=True)


def package_digest() -> str:
    """A digest of everything that goes into the installed package."""
    digest = hashlib.sha256()
    files = [ROOT / "pyproject.toml", ROOT / "README.md",
             *(ROOT / "multiopt_lab").rglob("*")]
    for path in sorted(f for f in files if f.is_file() and "__pycache__" not in f.parts):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def install_package() -> None:
    """Install this checkout itself (not editable: tests see what users get).

    Skipped when nothing in the package changed since the last install.
    """
    wanted = package_digest()
    if PACKAGE_STAMP.exists() and PACKAGE_STAMP.read_text() == wanted:
        return
    run(
        VENV_PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-build-isolation", "--force-reinstall", ROOT,
        stdout=subprocess.DEVNULL,
    )
    PACKAGE_STAMP.write_text(wanted)


def ensure_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("installing Debian's chromium for the browser tests (about 20 s)")
        try:
            run("apt-get", "update", "-qq")
            run("apt-get", "install", "-y", "-qq", "chromium", stdout=subprocess.DEVNULL)
        except subprocess.CalledProcessError as error:
            say(f"could not install chromium ({error}); browser tests will skip or fail")
    else:
        say(f"no {CHROMIUM} and no way to install it: browser tests will skip loudly")


def setup() -> None:
    create_venv()
    install_dependencies()
    install_package()


def lab_settings() -> Path:
    """A settings folder for the lab: the environment's own files, with LAB_OVERRIDES on top."""
    if LAB_SETTINGS.exists():
        shutil.rmtree(LAB_SETTINGS)
    if VENV_LAB_SETTINGS.is_dir():
        shutil.copytree(VENV_LAB_SETTINGS, LAB_SETTINGS)
    LAB_SETTINGS.mkdir(parents=True, exist_ok=True)
    overrides_file = LAB_SETTINGS / "overrides.json"
    overrides = json.loads(overrides_file.read_text()) if overrides_file.exists() else {}
    for plugin, settings in LAB_OVERRIDES.items():
        overrides[plugin] = {**overrides.get(plugin, {}), **settings}
    overrides_file.write_text(json.dumps(overrides, indent=1) + "\n")
    return LAB_SETTINGS


def lab_command(arguments: list[str]) -> list[str]:
    """The ``jupyter lab`` command line ``python3 dev.py lab ARGUMENTS`` runs."""
    command = [VENV_PYTHON, "-m", "jupyter", "lab", f"--notebook-dir={ROOT / 'notebooks'}"]
    if not any(a.startswith("--LabApp.app_settings_dir") for a in arguments):
        command.append(f"--LabApp.app_settings_dir={lab_settings()}")
    if not any(a.startswith("--ServerApp.jpserver_extensions") for a in arguments):
        command += [f"--ServerApp.jpserver_extensions={name}={enabled}"
                    for name, enabled in LAB_SERVER_EXTENSIONS.items()]
    if os.geteuid() == 0 and "--allow-root" not in arguments:
        command.append("--allow-root")  # containers often run as root; Jupyter refuses without it
    return [str(c) for c in command + arguments]


def lab(arguments: list[str]) -> int:
    setup()
    say("opening JupyterLab on notebooks/ (Ctrl-C to stop)")
    return subprocess.call(lab_command(arguments))


def test(arguments: list[str]) -> int:
    setup()
    ensure_chromium()
    # Run from an empty folder so the installed package, not this checkout's
    # folder, is what the tests import (a missing package file then fails).
    with tempfile.TemporaryDirectory(prefix="multiopt_lab-tests-") as workdir:
        command = [
            VENV_PYTHON, "-m", "pytest",
            f"--rootdir={ROOT}", "-c", ROOT / "pyproject.toml",
            "-p", "no:cacheprovider",
            "--nbval", "--nbval-current-env",
            "--nbval-sanitize-with", ROOT / "notebooks" / "nbval_sanitize.cfg",
            ROOT / "tests", ROOT / "notebooks",
            *arguments,
        ]
        return subprocess.call([str(c) for c in command], cwd=workdir)


def main() -> int:
    jobs = {"lab": lab, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in jobs:
        print(__doc__)
        return 2
    return jobs[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
