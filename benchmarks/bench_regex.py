# Imports the private modules multiopt_lab._src.rules.joined, multiopt_lab._src.rules.matching
#   (benchmarks measure internals).
"""``regex()`` in rules: RE2 (what rules use) against Python's ``re`` (what they used).

Run: ``.venv/bin/python benchmarks/bench_regex.py [--limit 20] [--repeat 9]``

Two tables, medians after a warm-up:

* hostile patterns (exponential backtracking in ``re``) against paths of
  growing length: ``re.search`` runs in a subprocess stopped after
  ``--limit`` seconds (shown as ``> limit``); the rule's matcher in this one.
* everyday patterns over 10,000 mlx-lm-like paths (what one ``assign`` of a
  big model evaluates): ``re.compile(p).search`` against the rule's matcher
  called path by path, and against what a rule does over a column: one RE2
  scan of the paths joined by newlines (``many``), with the ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np

from multiopt_lab._src.rules.joined import JoinedPaths
from multiopt_lab._src.rules.matching import linear_search

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import header, median_seconds, record  # noqa: E402

MLX_LM_PATH = "model.layers.0.self_attn.q_proj.weight"  # 39 characters

HOSTILE = [
    (r"(.|\w)*z", lambda n: (MLX_LM_PATH * (n // len(MLX_LM_PATH) + 1))[:n]),
    ("a{0,30}" * 7 + "b", lambda n: "a" * n),
]
LENGTHS = (20, 24, 28, 39, 54, 1_000, 10_000)

EVERYDAY = [r"\.norm\d*\.", r"layers\.(1|2)\d\.", r"(q|k|v)_proj\.weight$", r"^model\.embed"]

_RE_TIMER = """
import re, sys, time
pattern, path = sys.argv[1], sys.argv[2]
compiled = re.compile(pattern)
start = time.perf_counter()
compiled.search(path)
print(time.perf_counter() - start)
"""


def python_re_seconds(pattern: str, path: str, limit: float) -> float | None:
    """Seconds ``re.search`` took in a fresh process, or None past ``limit``."""
    try:
        done = subprocess.run([sys.executable, "-c", _RE_TIMER, pattern, path],
                              capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return None
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=float, default=20.0, help="seconds before re is stopped")
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()

    header("bench_regex")
    print(f"hostile patterns: re.search (stopped after {args.limit:g} s) vs the rule's RE2 matcher")
    print(f"{'pattern':<40} {'path':>7} {'re':>10} {'RE2':>10}")
    for pattern, make_path in HOSTILE:
        gave_up = False
        for n in LENGTHS:
            path = make_path(n)
            search = linear_search(pattern)
            ours = median_seconds(lambda: search(path), args.repeat)
            # Once re needed more than the limit, a longer path needs more still.
            theirs = None if gave_up else python_re_seconds(pattern, path, args.limit)
            gave_up = theirs is None
            shown = f"> {args.limit:g} s" if theirs is None else f"{theirs:.4f} s"
            print(f"{pattern[:40]:<40} {n:>7} {shown:>10} {ours * 1e3:>7.3f} ms")
            record("bench_regex", f"hostile {pattern[:40]}", ours, theirs,
                   None if theirs is None else ours / theirs,
                   f"python re (None: stopped after {args.limit:g} s)", unit="s",
                   size=f"{n}-char path")

    import re
    paths = [f"model.layers.{i % 32}.{part}" for i in range(10_000 // 8) for part in (
        "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
        "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
        "input_layernorm.weight", "post_attention_layernorm.weight")]
    print(f"\neveryday patterns over {len(paths):,} paths, median of {args.repeat}")
    print(f"{'pattern':<28} {'re ms':>8} {'RE2 ms':>8} {'RE2/re':>7} {'scan ms':>8} {'scan/re':>8}")
    joined, rows = JoinedPaths.of(paths), np.arange(len(paths))
    for pattern in EVERYDAY:
        theirs_fn, ours_fn = re.compile(pattern).search, linear_search(pattern)
        expected = [theirs_fn(p) is not None for p in paths]
        assert expected == [ours_fn(p) is not None for p in paths]
        assert expected == ours_fn.many(joined, rows).tolist()
        theirs = median_seconds(lambda: [theirs_fn(p) is not None for p in paths], args.repeat)
        ours = median_seconds(lambda: [ours_fn(p) is not None for p in paths], args.repeat)
        scan = median_seconds(lambda: ours_fn.many(joined, rows), args.repeat)
        print(f"{pattern:<28} {theirs * 1e3:8.2f} {ours * 1e3:8.2f} {ours / theirs:6.1f}x "
              f"{scan * 1e3:8.2f} {scan / theirs:7.2f}x")
        record("bench_regex", f"everyday {pattern}", ours * 1e3, theirs * 1e3, ours / theirs,
               "python re", size=f"{len(paths):,} paths")
        record("bench_regex", f"everyday {pattern}, one scan", scan * 1e3, theirs * 1e3, scan / theirs,
               "python re", size=f"{len(paths):,} paths")


if __name__ == "__main__":
    main()
