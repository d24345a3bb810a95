"""Gather, here, the wheels a GPU machine without a registry needs; split the big one in two.

Run:  .venv/bin/python benchmarks/gpu/prepare.py [--python 3.12] [--backend cuda13]

The device machine (see ``benchmarks/gpu/README.md``) has Python 3.12 with
PyTorch, numpy, pandas, matplotlib, pytest and the CUDA 13 libraries, but no
mlx and none of the notebook libraries. This downloads, for that Python and
manylinux x86-64: mlx and its backend wheel (``mlx-cuda-13``: about 90 MB),
mlx-lm, and what ipywidgets, anywidget, tomli-w and google-re2 need. One call
of the device tool carries at most 64 MiB, so the files are laid out in two
folders that two calls carry one after the other: ``.whl/a`` (the small
wheels and the first half of the backend wheel) and ``.whl/b`` (the second
half). ``.whl/`` is ignored by git (``.gitignore``), so only a call that
names it in ``carry`` takes it along.

Example:
    >>> parts_of(95_000_000, 40 * 2**20)
    3
"""

from __future__ import annotations

import argparse
import hashlib
import math
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = ["manylinux_2_35_x86_64", "manylinux_2_34_x86_64", "manylinux_2_31_x86_64",
             "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]
# Already on the device machine (its image's pip list): never carried.
ON_DEVICE = {"numpy", "pandas", "matplotlib", "pillow", "pytest", "hypothesis", "pyarrow",
             "scikit_learn", "typing_extensions", "pygments", "packaging", "transformers",
             "tokenizers", "sentencepiece", "protobuf", "pyyaml", "jinja2", "markupsafe",
             "setuptools", "wheel", "six", "python_dateutil", "pytz", "tzdata", "huggingface_hub",
             "safetensors", "filelock", "fsspec", "regex", "requests", "tqdm", "contourpy",
             "cycler", "fonttools", "kiwisolver", "pyparsing", "scipy", "joblib", "threadpoolctl",
             "sortedcontainers", "attrs", "iniconfig", "pluggy", "certifi", "idna", "urllib3",
             "charset_normalizer", "absl_py", "psutil"}
# With their dependencies (small, pure Python but for google-re2).
WITH_DEPENDENCIES = ["ipywidgets>=8.1", "anywidget>=0.11", "tomli-w>=1.0", "google-re2>=1.1"]
PART_BYTES = 40 * 2**20


def parts_of(size: int, part_bytes: int) -> int:
    """How many parts ``split -b part_bytes`` makes of a file of ``size`` bytes."""
    return max(1, math.ceil(size / part_bytes))


def download(requirements: list[str], dest: Path, python: str, deps: bool) -> None:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
               "-d", str(dest)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    if not deps:
        command.append("--no-deps")
    subprocess.run(command + requirements, check=True)


def distribution(wheel: Path) -> str:
    return wheel.name.split("-")[0].lower().replace(".", "_")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="3.12", help="the device's Python. Default: 3.12")
    parser.add_argument("--backend", default="cuda13", choices=["cuda13", "cuda12", "cpu"])
    parser.add_argument("--mlx", default="0.32.4")
    parser.add_argument("--mlx-lm", default="0.32.2")
    parser.add_argument("--out", type=Path, default=ROOT / ".whl")
    args = parser.parse_args()

    shutil.rmtree(args.out, ignore_errors=True)
    downloads, first, second = args.out / "downloads", args.out / "a", args.out / "b"
    for folder in (downloads, first, second):
        folder.mkdir(parents=True)
    backend = {"cuda13": "mlx-cuda-13", "cuda12": "mlx-cuda-12", "cpu": "mlx-cpu"}[args.backend]
    download([f"mlx=={args.mlx}", f"{backend}=={args.mlx}", f"mlx-lm=={args.mlx_lm}"],
             downloads, args.python, deps=False)
    download(WITH_DEPENDENCIES, downloads, args.python, deps=True)

    big = None
    for wheel in sorted(downloads.glob("*.whl")):
        name = distribution(wheel)
        if name in ON_DEVICE:
            continue
        if name == backend.replace("-", "_"):
            big = wheel
            continue
        shutil.copy2(wheel, first / wheel.name)
    # The backend wheel in parts: the first in a/, the rest in b/; check.sh joins them.
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    (first / "BACKEND_WHEEL").write_text(f"{big.name} {digest}\n")
    subprocess.run(["split", "-b", str(PART_BYTES), "-d", str(big), str(downloads / "part-")],
                   check=True)
    parts = sorted(downloads.glob("part-*"))
    shutil.move(str(parts[0]), first / parts[0].name)
    for part in parts[1:]:
        shutil.move(str(part), second / part.name)
    shutil.rmtree(downloads)
    for folder in (first, second):
        size = sum(f.stat().st_size for f in folder.iterdir())
        print(f"{folder.relative_to(ROOT)}: {len(list(folder.iterdir()))} files, "
              f"{size / 2**20:.1f} MiB")
        if size > 60 * 2**20:
            print("  over what one call carries with the working tree (64 MiB)", file=sys.stderr)
            return 1
    print("carry .whl/a in one call, .whl/b in the next (at once: a warm machine keeps .whl/a)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
