#!/usr/bin/env python3
"""Set up everything and run multiopt_lab's two jobs: the lab and the tests.

    python3 dev.py lab      # virtual environment + JupyterLab on notebooks/
    python3 dev.py test     # virtual environment + every test (unit, notebooks, browser)

Both create ``.venv`` next to this file on first use and reinstall the
dependencies only when ``pyproject.toml`` changes. Nothing else needs to be
installed by hand: the test job also installs Debian's ``chromium`` with
``apt-get`` when it is missing and the machine allows it (root, Debian).

Extra arguments after ``lab`` go to ``jupyter lab``; after ``test`` they go to
pytest (``python3 dev.py test -k rules -x``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".multiopt_lab-deps"
CHROMIUM = Path(os.environ.get("MULTIOPT_LAB_CHROMIUM", "/usr/bin/chromium"))


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


def install_dependencies() -> None:
    """Install the package's dependencies when pyproject.toml changed."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    say("installing dependencies (first run or pyproject.toml changed)")
    pip = [VENV_PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run(*pip, "--upgrade", "pip", "setuptools", "wheel")
    run(*pip, f"{ROOT}[lab,test]")
    STAMP.write_text(wanted)


def install_package() -> None:
    """Install this checkout itself (not editable: tests see what users get)."""
    run(
        VENV_PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-build-isolation", "--force-reinstall", ROOT,
        stdout=subprocess.DEVNULL,
    )


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


def lab(arguments: list[str]) -> int:
    setup()
    say("opening JupyterLab on notebooks/ (Ctrl-C to stop)")
    command = [VENV_PYTHON, "-m", "jupyter", "lab", f"--notebook-dir={ROOT / 'notebooks'}"]
    if os.geteuid() == 0 and "--allow-root" not in arguments:
        command.append("--allow-root")  # containers often run as root; Jupyter refuses without it
    return subprocess.call([str(c) for c in command + arguments])


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
