# Imports the private module multiopt_lab._src.device (benchmarks measure internals).
"""What every benchmark shares: a header naming the device, timing, and rows for run_all.py.

Each benchmark prints its own table as it goes. With the environment variable
``MULTIOPT_LAB_BENCH_ROWS`` set to a file path (``run_all.py`` does it), every
row is also appended to that file as one JSON line, so that one table of all
benchmarks can be printed at the end, whichever process measured the row.

:func:`race` times several runs interleaved (so a load drift hits all
alike), :func:`median_seconds` one run.

Example:
    >>> header("bench_example")  # doctest: +ELLIPSIS
    bench_example on ... mlx ...
    >>> [len(times) for times in race([lambda: None, lambda: None], repeats=3)]
    [3, 3]
"""

from __future__ import annotations

import json
import os
import statistics
import time

import mlx.core as mx

try:
    from multiopt_lab._src.device import describe_device
except ModuleNotFoundError:  # a checkout from before issue 28 (bench_per_parameter --history-against)
    from multiopt_lab.device import describe_device

ROWS_FILE = "MULTIOPT_LAB_BENCH_ROWS"


def race(runs, repeats: int, warmup: int = 5) -> list[list[float]]:
    """Per-repetition seconds of each run, interleaved so load drifts hit all alike."""
    for run in runs:
        for _ in range(warmup):
            run()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            times[i].append(time.perf_counter() - start)
    return times


def median_seconds(fn, repeat: int, warmup: int = 1) -> float:
    """The median seconds of ``repeat`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def header(title: str) -> None:
    """Print ``title on <device>, mlx <version>``: where the figures below come from."""
    print(f"{title} on {describe_device()}, mlx {mx.__version__}", flush=True)


def record(benchmark: str, case: str, ours: float, base: float | None, ratio: float | None,
           baseline: str, unit: str = "ms", size: str = "") -> None:
    """Append one row for run_all.py (does nothing unless ``MULTIOPT_LAB_BENCH_ROWS`` is set).

    Args:
        benchmark: The script's name (``bench_optimizer``).
        case: What was measured.
        ours, base: The medians of the candidate and of its baseline, in ``unit``.
        ratio: ours / baseline (the median of paired ratios where the script pairs them).
        baseline: What the candidate is compared with.
        size: The model or data size (``4x64``, ``9,998 parameters``).
    """
    path = os.environ.get(ROWS_FILE)
    if not path:
        return
    row = {"benchmark": benchmark, "case": case, "size": size, "ours": ours, "base": base,
           "ratio": ratio, "baseline": baseline, "unit": unit}
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(row) + "\n")
