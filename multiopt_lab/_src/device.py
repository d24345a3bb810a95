"""Which MLX backend and device a run uses, in words, and a clear error without a backend.

On Linux, ``pip install mlx`` alone brings no backend: importing ``mlx.core``
then fails with ``libmlx.so: cannot open shared object file``.
:func:`require_backend` turns that into one message that names the extras.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

__all__ = ["BackendMissingError", "require_backend", "describe_device", "describe_facts", "device_facts"]

INSTALL_HINT = (
    "install the backend for this machine: pip install 'multiopt_lab[cpu]' (any Linux machine), "
    "'multiopt_lab[cuda13]' or 'multiopt_lab[cuda12]' (an NVIDIA GPU whose driver supports that "
    "CUDA version); on macOS plain mlx brings Metal. `python3 dev.py ...` picks one by itself"
)


class BackendMissingError(ImportError):
    """Raised on import when MLX has no backend (Linux without ``mlx[cpu]`` or ``mlx[cuda*]``).
    """


def require_backend() -> Any:
    """``mlx.core``, or a :class:`BackendMissingError` that says which extra to install.
    """
    try:
        import mlx.core as mx
    except ImportError as error:
        raise BackendMissingError(
            f"expected an MLX backend, found none ({error}); {INSTALL_HINT}") from error
    return mx


def device_facts(device: Any = None) -> dict[str, Any]:
    """JSON-friendly facts about ``device`` (default: MLX's default device).
    """
    mx = require_backend()
    device = mx.default_device() if device is None else device
    try:
        info = dict(mx.device_info(device))
    except (RuntimeError, ValueError, TypeError):
        info = {}
    if device.type == mx.gpu:
        backend = "metal" if mx.metal.is_available() else "cuda"
    else:
        backend = "cpu"
    name = info.get("device_name") or platform.processor() or platform.machine()
    facts = {"device": str(device), "backend": backend, "device_name": str(name),
             "mlx_version": mx.__version__}
    memory = info.get("total_memory") or info.get("memory_size")
    if isinstance(memory, int) and memory > 0:
        facts["memory_gib"] = round(memory / 2**30, 1)
    return facts


def describe_device(device: Any = None) -> str:
    """``"cpu (AMD EPYC)"`` or ``"gpu, cuda (NVIDIA H200)"``: the device in a few words.
    """
    return describe_facts(device_facts(device))


def describe_facts(facts: Mapping[str, Any]) -> str:
    """The words of :func:`describe_device` from saved facts (a run's metadata); ``""`` if unknown.
    """
    backend, name = facts.get("backend"), facts.get("device_name")
    if not backend:
        return ""
    kind = "cpu" if backend == "cpu" else f"gpu, {backend}"
    return f"{kind} ({name})" if name else kind
