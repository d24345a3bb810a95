# Imports the private module multiopt_lab._src.optimizer.parameter_metrics (benchmarks measure internals).
"""What per-parameter metrics cost in a whole training step, beside the per-group ones.

Run:  .venv/bin/python benchmarks/bench_per_parameter.py [--quick] [--repeats N]

Two models: mlx-lm's own Qwen3 from a tiny config (hidden 64, 16 layers,
179 parameter arrays, nothing downloaded; ``--layers 32`` for 355) and
``examples.TinyGPT`` (hidden 64, 2 layers). Each row times the whole step
(forward, backward, update, ``mx.eval``, and on a recorded step reading the
metrics into a History, as ``train()`` does) with a ``MultiOptimizer`` (AdamW
on matrices, AdamW on the rest), side by side in one process: every variant
has its own model, they run interleaved in blocks of ten steps after a
warm-up, and each ratio is the median of the paired ratios to the same step
without metrics. Times are the process's CPU time (``time.process_time``):
on a machine shared with other jobs, wall-clock times swing by tens of
percent from one block to the next while the CPU a step takes does not; the
wall-clock medians are printed beside them.

Variants: per-group metrics every 10 steps and every step (today's), and
per-parameter metrics (``per_parameter=True``) every 10 steps and every
step; each eager and under ``compile_step``. Targets: per-parameter every
10 steps at most 1.03x, every step at most 1.10x, and no dearer than the
per-group metrics of the same cadence.

Last, the History a 32-layer model fills when recorded every 10 steps for
10,000 steps (1,000 recorded steps): its memory, and the time to save and
load it as CSV and Parquet.

``--history-speed`` times only the History of that model (CPU time, as the
step rows: waiting for the disk is left out), medians of several repetitions: recording a step (in memory, and streaming to a file),
saving and loading CSV and Parquet, following a streamed file (whole, and
one refresh per recorded step). ``--history-against TREE`` runs that part in
fresh processes, alternately with this checkout and with the checkout TREE
(another commit of multiopt_lab), and prints both side by side with the
median of the paired ratios: a before/after comparison under the same
conditions. It uses only ``History``'s public methods, so it runs against
older commits as they are.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten

from multiopt_lab import History, MultiOptimizer, compile_step, examples
try:
    from multiopt_lab._src.optimizer.parameter_metrics import ParameterMetrics
except ModuleNotFoundError:  # a checkout from before issue 28 (--history-against runs this file there)
    from multiopt_lab.optimizer.parameter_metrics import ParameterMetrics

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import header, record  # noqa: E402

QWEN3 = {"model_type": "qwen3", "hidden_size": 64, "num_hidden_layers": 32,
         "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
         "head_dim": 16, "rms_norm_eps": 1e-5, "vocab_size": 256, "max_position_embeddings": 128,
         "rope_theta": 10000.0, "tie_word_embeddings": True}
TASK = examples.sequence_task("reverse", length=8, batch_size=32)

#: (name, metrics_every, per_parameter); the first is the baseline of the others.
VARIANTS = [("no metrics", None, False), ("groups every 10", 10, False),
            ("parameters every 10", 10, True), ("groups every step", 1, False),
            ("parameters every step", 1, True)]


def qwen3(layers: int):
    from mlx_lm.tuner.trainer import default_loss

    module = importlib.import_module("mlx_lm.models.qwen3")
    mx.random.seed(0)
    model = module.Model(module.ModelArgs.from_dict({**QWEN3, "num_hidden_layers": layers}))
    mx.eval(model.parameters())
    rng = np.random.default_rng(0)
    tokens = mx.array(rng.integers(0, QWEN3["vocab_size"], (4, 33)), mx.int32)
    lengths = mx.array([[0, 32]] * 4)

    def loss(model, tokens, lengths):
        return default_loss(model, tokens, lengths)[0]

    return model, loss, lambda step: (tokens, lengths)


def tiny_gpt():
    mx.random.seed(0)
    model = examples.TinyGPT(TASK.vocab_size, dims=64, layers=2, heads=4)
    mx.eval(model.parameters())
    return model, TASK.loss_fn, TASK.batch


def block(build, every, per_parameter, compiled):
    """Ten whole steps of one variant (its own model and optimizer), as a callable."""
    model, loss_fn, batch = build()
    optimizer = MultiOptimizer([optim.AdamW(1e-3), optim.AdamW(1e-3)], ["ndim == 2"],
                               metrics_every=every, per_parameter=per_parameter)
    loss_and_grad = nn.value_and_grad(model, loss_fn)
    history = History()
    history.start_run("bench", {"labels": list(optimizer.labels)})

    def step(*data):
        loss, grads = loss_and_grad(model, *data)
        optimizer.update(model, grads)
        return loss

    if compiled:
        optimizer.init(model)
        step = compile_step(step, model, optimizer)
    state = {"index": 0, "seen": None}

    def run():
        for _ in range(10):
            loss = step(*batch(state["index"]))
            mx.eval(loss, model.state, optimizer.state)
            state["index"] += 1
            # What train() does after each step: record what is new.
            if every is not None and optimizer.metrics_step != state["seen"]:
                state["seen"] = optimizer.metrics_step
                history.record(state["index"], loss=loss.item(), metrics=optimizer.metrics,
                               parameters=optimizer.parameter_metrics if per_parameter else None)
            else:
                history.record(state["index"], loss=loss.item())
    run.arrays = len(tree_flatten(model.trainable_parameters()))
    return run


def race_cpu(runs, repeats: int, warmup: int) -> tuple[list[list[float]], list[list[float]]]:
    """CPU and wall seconds of each run, ``repeats`` times, interleaved after ``warmup`` calls each."""
    for run in runs:
        for _ in range(warmup):
            run()
    cpu: list[list[float]] = [[] for _ in runs]
    wall: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start, start_wall = time.process_time(), time.perf_counter()
            run()
            cpu[i].append(time.process_time() - start)
            wall[i].append(time.perf_counter() - start_wall)
    return cpu, wall


def step_rows(name: str, build, repeats: int, modes=("eager", "compile_step")) -> None:
    for compiled in [mode == "compile_step" for mode in modes]:
        runs = [block(build, every, per_parameter, compiled)
                for _, every, per_parameter in VARIANTS]
        times, wall = race_cpu(runs, repeats, warmup=2)
        mode = "compile_step" if compiled else "eager"
        size = f"{name}, {runs[0].arrays} arrays"
        base = times[0]
        base_ms = statistics.median(base) * 100  # ms per step (blocks of ten)
        print(f"\n{size}, {mode}: CPU ms per step (median of {repeats} blocks of 10), "
              "ratio = median of paired ratios to no metrics; wall-clock beside")
        print(f"{'variant':<26}{'CPU ms':>9}{'ratio':>8}{'wall ms':>10}{'ratio':>8}")
        for (variant, _, _), variant_times, variant_wall in zip(VARIANTS, times, wall):
            ratio = statistics.median(t / b for t, b in zip(variant_times, base))
            wall_ratio = statistics.median(t / b for t, b in zip(variant_wall, wall[0]))
            ms = statistics.median(variant_times) * 100
            print(f"{variant:<26}{ms:>9.2f}{ratio:>8.3f}{statistics.median(variant_wall) * 100:>10.2f}"
                  f"{wall_ratio:>8.3f}", flush=True)
            if variant != "no metrics":
                record("bench_per_parameter", f"{mode}, {variant}", ms, base_ms, ratio,
                       f"{mode}, no metrics", size=size)


def _long_history_layout(layers: int) -> tuple[list[str], list[str]]:
    paths = ["model.embed_tokens.weight", "model.norm.weight"]
    for i in range(layers):
        paths += [f"model.layers.{i}.{name}" for name in (
            "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
            "self_attn.o_proj.weight", "self_attn.q_norm.weight", "self_attn.k_norm.weight",
            "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
            "input_layernorm.weight", "post_attention_layernorm.weight")]
    return paths, ["adamw" if "norm" in p or "embed" in p else "muon" for p in paths]


def history_rows(layers: int, recorded_steps: int) -> None:
    paths, groups = _long_history_layout(layers)
    rng = np.random.default_rng(0)
    history = History()
    history.start_run("long", {"labels": ["muon", "adamw"]})
    start = time.perf_counter()
    for k in range(recorded_steps):
        step = 1 + 10 * k
        history.record(step, loss=1.0, parameters=ParameterMetrics(
            step, paths, groups, rng.random((len(paths), 4))))
    recording = time.perf_counter() - start
    start = time.perf_counter()
    frame = history.parameters
    building = time.perf_counter() - start
    frame_mb = frame.memory_usage(deep=True).sum() / 2**20
    blocks_mb = len(frame) * 8 / 2**20
    print(f"\nHistory of {layers} layers ({len(paths)} arrays) recorded every 10 steps for "
          f"{10 * recorded_steps:,} steps: {len(frame):,} per-parameter rows")
    print(f"  memory: frame {frame_mb:.1f} MiB (categorical names, {frame_mb * 2**20 / len(frame):.1f} "
          f"bytes a row) + stored blocks {blocks_mb:.1f} MiB")
    print(f"  recording {recording:.2f} s ({1e3 * recording / recorded_steps:.2f} ms a step), "
          f"building the frame {building:.2f} s")
    size = f"{len(frame):,} rows"
    record("bench_per_parameter", "History.parameters memory (frame)", frame_mb, None, None,
           "", unit="MiB", size=size)
    with tempfile.TemporaryDirectory() as folder:
        for suffix in ("csv", "parquet"):
            if suffix == "parquet" and importlib.util.find_spec("pyarrow") is None:
                continue
            path = os.path.join(folder, f"h.{suffix}")
            start = time.perf_counter()
            history.save(path)
            saving = time.perf_counter() - start
            start = time.perf_counter()
            loaded = History.load(path)
            loaded.parameters  # noqa: B018 - built as a reader would
            loading = time.perf_counter() - start
            side = os.path.join(folder, f"h.parameters.{suffix}")
            print(f"  {suffix}: save {saving:.2f} s, load {loading:.2f} s, "
                  f"{os.path.getsize(side) / 2**20:.0f} MiB on disk")
            record("bench_per_parameter", f"History.load ({suffix})", loading * 1e3, None, None,
                   "", size=size)


def history_speed(layers: int, steps: int, repeats: int) -> dict[str, float]:
    """Median CPU milliseconds of each History operation (see the module docstring)."""
    paths, groups = _long_history_layout(layers)
    rng = np.random.default_rng(0)
    blocks = [ParameterMetrics(1 + 10 * k, paths, groups, rng.random((len(paths), 4)))
              for k in range(steps)]
    names = ("update_norm", "grad_norm", "param_norm", "update_ratio", "learning_rate")
    metrics = [{group: dict(zip(names, rng.random(5).tolist())) for group in ("muon", "adamw", "total")}
               for _ in range(steps)]
    parquet = importlib.util.find_spec("pyarrow") is not None
    times: dict[str, list[float]] = {}

    def timed(case: str, start: float) -> None:
        times.setdefault(case, []).append(1e3 * (time.process_time() - start))

    def fill(history) -> None:
        history.start_run("long", {"labels": ["muon", "adamw"]})
        for k, block in enumerate(blocks):
            history.record(block.step, loss=1.0, metrics=metrics[k], parameters=block)

    for _ in range(repeats + 1):
        with tempfile.TemporaryDirectory() as folder:
            history = History()
            start = time.process_time()
            fill(history)
            timed("record a step (ms)", start)
            times["record a step (ms)"][-1] /= steps
            streamed = os.path.join(folder, "streamed.csv")
            writer = History(streamed)
            start = time.process_time()
            fill(writer)
            timed("record a step, streaming (ms)", start)
            times["record a step, streaming (ms)"][-1] /= steps
            writer.close()
            start = time.process_time()
            whole = History.follow(streamed)
            whole.frame, whole.parameters  # noqa: B018 - built as a reader would
            timed("follow a streamed file, whole (ms)", start)
            for suffix in ("csv", "parquet") if parquet else ("csv",):
                path = os.path.join(folder, f"h.{suffix}")
                start = time.process_time()
                history.save(path)
                timed(f"save {suffix} (ms)", start)
                start = time.process_time()
                loaded = History.load(path)
                loaded.frame, loaded.parameters  # noqa: B018 - built as a reader would
                timed(f"load {suffix} (ms)", start)
            # A follower that refreshes after every recorded step (a monitor's watch thread).
            live = os.path.join(folder, "live.csv")
            writer = History(live)
            writer.start_run("long", {"labels": ["muon", "adamw"]})
            follower = History.follow(live)
            spent = 0.0
            for k, block in enumerate(blocks):
                writer.record(block.step, loss=1.0, metrics=metrics[k], parameters=block)
                start = time.process_time()
                follower.refresh()
                spent += time.process_time() - start
            writer.close()
            times.setdefault("follow, refresh per step (ms)", []).append(1e3 * spent / steps)
            assert len(follower) == len(writer) and len(follower.parameters) == len(writer.parameters)
    # The first repetition is the warm-up (imports, pyarrow, caches): left out.
    return {case: statistics.median(values[1:]) for case, values in times.items()}


def history_against(tree: str, layers: int, steps: int, repeats: int, rounds: int) -> None:
    """The History speed of this checkout and of ``tree``, in alternating fresh processes."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = {"this checkout": here, os.path.basename(os.path.normpath(tree)) or tree: tree}
    found: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    command = [sys.executable, os.path.abspath(__file__), "--history-speed", "--json",
               "--history-layers", str(layers), "--history-steps", str(steps),
               "--history-repeats", str(repeats)]
    for _ in range(rounds):
        for name, root in reversed(list(trees.items())):  # the other tree first in each round
            env = {**os.environ, "PYTHONPATH": root, "MULTIOPT_LAB_BENCH_ROWS": ""}
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            found[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    (ours_name, ours), (base_name, base) = found.items()
    print(f"\nHistory of {layers} layers, {steps} recorded steps: medians of {rounds} rounds "
          f"(each the median of {repeats} repetitions in a fresh process), alternating; "
          f"ratio = median of the paired ratios, this checkout / {base_name}")
    print(f"{'case':<38}{base_name[:14]:>14}{'this checkout':>15}{'ratio':>8}")
    for case in ours[0]:
        if case not in base[0]:
            continue
        before = statistics.median(r[case] for r in base)
        after = statistics.median(r[case] for r in ours)
        ratio = statistics.median(a[case] / b[case] for a, b in zip(ours, base))
        print(f"{case:<38}{before:>14.3f}{after:>15.3f}{ratio:>8.3f}")
        record("bench_per_parameter", f"History {case}", after, before, ratio, base_name,
               size=f"{layers} layers, {steps} recorded steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 4-layer Qwen3, few repetitions")
    parser.add_argument("--repeats", type=int, default=None, help="blocks of ten steps per variant")
    parser.add_argument("--layers", type=int, default=16, help="Qwen3 layers of the step rows")
    parser.add_argument("--models", default="qwen3,tinygpt", help="comma-separated: qwen3, tinygpt")
    parser.add_argument("--modes", default="eager,compile_step", help="comma-separated: eager, compile_step")
    parser.add_argument("--no-history", action="store_true", help="skip the History size rows")
    parser.add_argument("--history-speed", action="store_true",
                        help="only the History: record, stream, save, load, follow (medians)")
    parser.add_argument("--history-against", metavar="TREE",
                        help="the History speed of this checkout beside the checkout TREE, "
                             "in alternating fresh processes")
    parser.add_argument("--history-layers", type=int, default=32)
    parser.add_argument("--history-steps", type=int, default=200, help="recorded steps")
    parser.add_argument("--history-repeats", type=int, default=5, help="repetitions in a process")
    parser.add_argument("--rounds", type=int, default=5, help="processes per tree (--history-against)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.history_against:
        header("bench_per_parameter")
        history_against(args.history_against, args.history_layers, args.history_steps,
                        args.history_repeats, args.rounds)
        return
    if args.history_speed:
        medians = history_speed(args.history_layers, args.history_steps, args.history_repeats)
        if args.json:
            print(json.dumps(medians))
            return
        header("bench_per_parameter")
        print(f"\nHistory of {args.history_layers} layers, {args.history_steps} recorded steps, "
              f"medians of {args.history_repeats} repetitions")
        for case, ms in medians.items():
            print(f"{case:<38}{ms:>12.3f}")
        return
    models, modes = args.models.split(","), args.modes.split(",")
    repeats = args.repeats or (3 if args.quick else 11)
    header("bench_per_parameter")
    layers = 4 if args.quick else args.layers
    if "qwen3" in models:
        with contextlib.suppress(ImportError):
            importlib.import_module("mlx_lm")
            step_rows(f"mlx-lm Qwen3 {layers}x64", lambda: qwen3(layers), repeats, modes)
    if "tinygpt" in models:
        step_rows("TinyGPT 2x64", tiny_gpt, repeats, modes)
    if not args.no_history:
        history_rows(32, 100 if args.quick else 1000)


if __name__ == "__main__":
    main()
