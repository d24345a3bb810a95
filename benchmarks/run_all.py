# Imports the private module multiopt_lab._src.device (benchmarks measure internals).
"""Every benchmark in one go: the device, one table (markdown and CSV), the time each took.

Run:  .venv/bin/python benchmarks/run_all.py [--quick] [--out DIR]

Each benchmark runs as a child process (the step benchmarks start one more
per model size); their rows come back through ``report.record``. ``--quick``
(small models, few repetitions: a few minutes on a 2-core CPU) is for
checking that everything runs; the figures worth quoting come from the full
run. On a GPU the step benchmarks also time a hidden-1024 model.

Example:
    >>> markdown_table([{"benchmark": "b", "case": "c", "size": "1", "ours": 1.0, "base": 2.0,
    ...                  "ratio": 0.5, "baseline": "x", "unit": "ms"}]).splitlines()[2]
    '| b | c | 1 | 1.000 | 2.000 | 0.500 | x |'
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import ROWS_FILE  # noqa: E402

COLUMNS = ["benchmark", "case", "size", "ours", "base", "ratio", "baseline", "unit"]


def plan(quick: bool, gpu: bool) -> list[tuple[str, list[str]]]:
    """``(script, arguments)`` for every benchmark, in the order they run."""
    sizes = "4x64,32x64,128x64,4x512" + (",4x1024" if gpu else "")
    steps = [] if quick else ["--sizes", sizes]
    runs = [
        ("bench_optimizer.py", ["--quick"] if quick else steps),
        ("bench_compiled_update.py", ["--quick"] if quick else steps),
        ("bench_training.py", ["--steps", "100", "--repeats", "1"] if quick else []),
        ("bench_per_parameter.py", ["--quick"] if quick else []),
        ("bench_assign.py", ["--repeat", "5"] if quick else []),
        ("bench_findings.py", ["--sizes", "1000,10000", "--repeat", "3"] if quick else []),
        ("bench_render.py", ["--sizes", "1000,10000", "--repeat", "3"] if quick else []),
        ("bench_mlx_lm.py", ["--quick"] if quick else []),
        ("bench_tree_walkers.py", ["--quick"] if quick else []),
        ("bench_regex.py", ["--limit", "2", "--repeat", "3"] if quick else []),
        ("bench_checkpoint.py", ["--leaves", "5000", "--repeat", "1"] if quick else []),
        ("bench_rulefile.py", ["--groups", "1000", "5000", "--repeat", "1"] if quick else []),
    ]
    return runs


def fmt(value) -> str:
    return "" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown_table(rows: list[dict]) -> str:
    """The rows as one markdown table (ratio: ours / baseline, lower is faster)."""
    lines = ["| benchmark | case | size | ours | baseline | ratio | baseline is |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row[k]) for k in
                                         ("benchmark", "case", "size", "ours", "base", "ratio",
                                          "baseline")) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models, few repetitions")
    parser.add_argument("--out", type=Path, default=Path("benchmark-results"),
                        help="folder for run_all.csv, run_all.md and each benchmark's log")
    parser.add_argument("--only", default=None, help="comma-separated benchmark names to run")
    args = parser.parse_args()

    import mlx.core as mx

    from multiopt_lab._src.device import describe_device, device_facts

    gpu = mx.default_device().type == mx.gpu
    args.out.mkdir(parents=True, exist_ok=True)
    device = f"{describe_device()}, mlx {mx.__version__}"
    print(f"run_all on {device}{' (quick)' if args.quick else ''}", flush=True)
    rows_file = Path(tempfile.mkstemp(prefix="run_all-", suffix=".jsonl")[1])
    env = {**os.environ, ROWS_FILE: str(rows_file)}
    timings, failed = [], []
    start_all = time.perf_counter()
    for script, arguments in plan(args.quick, gpu):
        name = script.removesuffix(".py")
        if args.only and name not in args.only.split(","):
            continue
        print(f"\n== {name} {' '.join(arguments)}", flush=True)
        start = time.perf_counter()
        with open(args.out / f"{name}.log", "w", encoding="utf-8") as log:
            process = subprocess.Popen([sys.executable, str(HERE / script), *arguments], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in process.stdout:
                print(line, end="", flush=True)
                log.write(line)
            code = process.wait()
        seconds = time.perf_counter() - start
        timings.append((name, seconds, code))
        if code != 0:
            failed.append(name)
    rows = [json.loads(line) for line in rows_file.read_text().splitlines() if line.strip()]
    rows_file.unlink()

    table = markdown_table(rows)
    total = time.perf_counter() - start_all
    summary = "\n".join(f"- {name}: {seconds:.0f} s" + ("" if code == 0 else f" (FAILED, rc {code})")
                        for name, seconds, code in timings)
    text = (f"# Benchmarks on {device}{' (quick)' if args.quick else ''}\n\n"
            f"device facts: {json.dumps(device_facts())}\n\n{table}\n\n"
            f"Ratio: ours / baseline (lower is faster); medians after warm-up.\n\n"
            f"{summary}\n- all: {total:.0f} s\n")
    (args.out / "run_all.md").write_text(text, encoding="utf-8")
    with open(args.out / "run_all.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=["device", *COLUMNS])
        writer.writeheader()
        for row in rows:
            writer.writerow({"device": device, **{k: row.get(k) for k in COLUMNS}})
    print("\n" + text)
    print(f"written: {args.out / 'run_all.md'}, {args.out / 'run_all.csv'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
