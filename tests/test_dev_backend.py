"""The README's commands pick the MLX backend for the machine (dev.py) and say which."""

from __future__ import annotations

import importlib.util
import os
import stat
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dev(monkeypatch):
    spec = importlib.util.spec_from_file_location("dev_under_test", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.delenv("MULTIOPT_LAB_BACKEND", raising=False)
    monkeypatch.setattr(module.platform, "system", lambda: "Linux")
    return module


def fake_nvidia_smi(folder: Path, output: str) -> None:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat <<'END'\n{output}\nEND\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


SMI = "| NVIDIA-SMI 580.159.03   Driver Version: 580.159.03   CUDA Version: {} |"


@pytest.mark.parametrize("cuda, backend", [("13.0", "cuda13"), ("13.1", "cuda13"),
                                           ("12.4", "cuda12"), ("11.8", "cpu")])
def test_an_nvidia_driver_picks_the_cuda_backend_it_supports(dev, tmp_path, monkeypatch, cuda,
                                                             backend):
    fake_nvidia_smi(tmp_path, SMI.format(cuda))
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    chosen, why = dev.choose_backend()
    assert chosen == backend
    assert cuda.split(".")[0] in why


def test_without_a_driver_linux_gets_the_cpu_backend(dev, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi anywhere
    assert dev.choose_backend() == ("cpu", "no NVIDIA driver (nvidia-smi) found")


def test_macos_gets_plain_mlx_with_metal(dev, monkeypatch):
    monkeypatch.setattr(dev.platform, "system", lambda: "Darwin")
    assert dev.choose_backend()[0] == "metal"


def test_the_environment_variable_overrides_and_is_checked(dev, monkeypatch):
    monkeypatch.setenv("MULTIOPT_LAB_BACKEND", "cuda12")
    assert dev.choose_backend() == ("cuda12", "MULTIOPT_LAB_BACKEND")
    monkeypatch.setenv("MULTIOPT_LAB_BACKEND", "rocm")
    with pytest.raises(SystemExit, match="not one of cpu, cuda12, cuda13, metal"):
        dev.choose_backend()


def test_pyproject_names_a_backend_extra_for_each_choice():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert extras["cpu"] == ["mlx[cpu]>=0.32"]
    assert extras["cuda12"] == ["mlx[cuda12]>=0.32"]
    assert extras["cuda13"] == ["mlx[cuda13]>=0.32"]
    # mlx itself, not a backend, is the plain dependency (a GPU machine must not get mlx[cpu]).
    assert "mlx>=0.32" in project["dependencies"]
    assert not any("[cpu]" in d for d in project["dependencies"])
