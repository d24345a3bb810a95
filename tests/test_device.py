# Tests the private modules' own units: multiopt_lab._src.device,
#   multiopt_lab._src.training.progress.
"""The backend and device a run uses: named where a run is, and a clear error without one."""

import io
import subprocess
import sys

import mlx.core as mx

import multiopt_lab as mol
from multiopt_lab._src.device import describe_device, device_facts
from multiopt_lab._src.training.progress import StopSignal, TextProgress


def test_importing_without_a_backend_names_the_extras():
    # What Linux with plain `pip install mlx` does: mlx.core fails to import (no libmlx.so).
    code = ("import sys; sys.modules['mlx.core'] = None\n"
            "import multiopt_lab\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("multiopt_lab._src.device.BackendMissingError: expected an MLX backend")
    for extra in ("multiopt_lab[cpu]", "multiopt_lab[cuda13]", "multiopt_lab[cuda12]"):
        assert extra in last


def test_device_facts_name_the_default_device():
    facts = device_facts()
    assert facts["device"] == str(mx.default_device())
    assert facts["backend"] in ("cpu", "cuda", "metal")
    assert facts["device_name"]
    assert describe_device().endswith(f"({facts['device_name']})")


def test_a_history_run_records_the_device():
    history = mol.History()
    history.start_run("run")
    metadata = history.metadata("run")
    assert metadata["device"] == str(mx.default_device())
    assert metadata["backend"] == device_facts()["backend"]
    assert metadata["device_name"] == device_facts()["device_name"]


def test_the_text_progress_line_names_the_device():
    stream = io.StringIO()
    bar = TextProgress(10, StopSignal(), stream=stream, clock=lambda: 1.0)
    bar.update(5, 0.5)
    bar.close()
    assert stream.getvalue().rstrip().endswith(f"on {describe_device()}")
