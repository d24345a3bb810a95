"""A whole mlx-lm training step: multiopt_lab.MultiOptimizer against MLX's, with and without metrics.

Run:  .venv/bin/python benchmarks/bench_mlx_lm.py [--quick]

The model is mlx-lm's own Llama from a tiny config (hidden 64, 2 layers,
vocabulary 256; nothing downloaded), trained by full fine-tuning or with LoRA
adapters on every layer. Both optimizers split the parameters the same way
([Adam, AdamW]: matrices to AdamW, the rest to Adam).

* "step" rows time the step exactly as ``mlx_lm.tuner.trainer.train`` builds
  it (``mx.compile`` with ``state = [model.state, optimizer.state,
  mx.random.state]``, its loss, ``mx.eval(state, ...)``), in blocks of ten
  steps, both optimizers interleaved after a warm-up; figures are medians
  per step and the median of the paired ratios.
* "metrics every step" is what a compiled step does when nothing chooses
  (the graph is fixed); "metrics on reported steps" calls
  ``optimizer.between_steps(model, record_metrics=...)`` before each step, as
  ``LabCallback.iterate_batches`` does, recording one step in ten.
* "train()" rows time whole ``train`` runs (``iters`` iterations, a report
  every ten, the compiled step traced anew by each run), with
  ``LabCallback`` passed as callback and ``iterate_batches`` against the same
  run with MLX's ``MultiOptimizer`` and no callback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import statistics
import sys
import tempfile
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten
from mlx_lm.tuner.trainer import TrainingArgs, default_loss, train
from mlx_lm.tuner.utils import linear_to_lora_layers

from multiopt_lab import MultiOptimizer
from multiopt_lab.integrations.mlx_lm import LabCallback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import header, race, record  # noqa: E402

CONFIG = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
          "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
          "rms_norm_eps": 1e-5, "vocab_size": 256, "tie_word_embeddings": False}
BATCH, LENGTH = 4, 32


def build(kind: str) -> nn.Module:
    llama = importlib.import_module("mlx_lm.models.llama")
    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs.from_dict(CONFIG))
    if kind == "lora":
        model.freeze()
        linear_to_lora_layers(model, CONFIG["num_hidden_layers"],
                              {"rank": 8, "scale": 20.0, "dropout": 0.0})
    mx.eval(model.parameters())
    return model


def sub_optimizers():
    return [optim.Adam(1e-3), optim.AdamW(1e-3)]


def ours(**kwargs):
    return MultiOptimizer(sub_optimizers(), ["ndim == 2"], **kwargs)


def mlx_multi():
    return optim.MultiOptimizer(sub_optimizers(), [lambda path, array: array.ndim == 2])


def batch():
    rng = np.random.default_rng(0)
    tokens = mx.array(rng.integers(0, CONFIG["vocab_size"], (BATCH, LENGTH + 1)), mx.int32)
    lengths = mx.array([[0, LENGTH]] * BATCH)
    return tokens, lengths


def mlx_lm_step(model, optimizer, before=None):
    """mlx-lm's compiled step (trainer.train's), as one call: ``run()`` does one iteration."""
    loss_value_and_grad = nn.value_and_grad(model, default_loss)
    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(data):
        (loss, tokens), grad = loss_value_and_grad(model, *data)
        optimizer.update(model, grad)
        return loss, tokens

    data = batch()
    count = [0]

    def run():
        if before is not None:
            before(count[0])
        count[0] += 1
        loss, tokens = step(data)
        mx.eval(state, loss, tokens)
    return run


def ten(run):
    def block():
        for _ in range(10):
            run()
    return block


def row(name, ours_times, base_times, baseline, size):
    ratio = statistics.median(o / b for o, b in zip(ours_times, base_times))
    ours_ms, base_ms = statistics.median(ours_times) * 1e3, statistics.median(base_times) * 1e3
    print(f"{name:<52} {ours_ms:>9.2f} {base_ms:>9.2f} {ratio:>7.3f}  {baseline}", flush=True)
    record("bench_mlx_lm", name, ours_ms, base_ms, ratio, baseline, size=size)


def per_step(times):
    return [t / 10 for t in times]


def step_rows(kind: str, repeats: int) -> None:
    arrays = len(tree_flatten(build(kind).trainable_parameters()))
    tag, size = f"{kind}, {arrays} arrays", f"llama 2x64, {kind}"
    t = race([ten(mlx_lm_step(build(kind), ours())), ten(mlx_lm_step(build(kind), mlx_multi()))],
             repeats)
    row(f"step, ours (no metrics), {tag}", *map(per_step, t), "mlx MultiOptimizer", size)

    model = build(kind)
    every = ours(metrics_every=1)
    t = race([ten(mlx_lm_step(model, every)), ten(mlx_lm_step(build(kind), ours()))], repeats)
    row(f"step, metrics every step, {tag}", *map(per_step, t), "ours, no metrics", size)

    model = build(kind)
    reported = ours(metrics_every=1)

    def choose(i, model=model, optimizer=reported):
        optimizer.between_steps(model, record_metrics=i % 10 == 0)

    t = race([ten(mlx_lm_step(model, reported, before=choose)),
              ten(mlx_lm_step(build(kind), ours()))], repeats)
    row(f"step, metrics on reported steps (1 in 10), {tag}", *map(per_step, t),
        "ours, no metrics", size)


def train_rows(kind: str, repeats: int, iters: int, folder: str) -> None:
    data = [(np.random.default_rng(i).integers(0, CONFIG["vocab_size"], LENGTH + 1).tolist(), 0)
            for i in range(BATCH * 4)]
    args = TrainingArgs(batch_size=BATCH, iters=iters, steps_per_report=10,
                        steps_per_eval=10**9, steps_per_save=10**9,
                        adapter_file=f"{folder}/adapters.safetensors")

    def ours_run():
        model, optimizer = build(kind), ours()
        callback = LabCallback(optimizer, model, args=args)
        with contextlib.redirect_stdout(io.StringIO()):
            train(model, optimizer, data, args=args, training_callback=callback,
                  iterate_batches=callback.iterate_batches)

    def mlx_run():
        model, optimizer = build(kind), mlx_multi()
        with contextlib.redirect_stdout(io.StringIO()):
            train(model, optimizer, data, args=args)

    t = race([ours_run, mlx_run], repeats, warmup=1)
    row(f"train() {iters} iters, ours + LabCallback + metrics, {kind}",
        *([x / iters for x in ts] for ts in t), "mlx MultiOptimizer, no callback",
        f"llama 2x64, {kind}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repetitions")
    args = parser.parse_args()
    repeats = 5 if args.quick else 21
    header("bench_mlx_lm")
    print(f"mlx-lm Llama hidden 64, 2 layers, batch {BATCH} x {LENGTH} tokens; per step")
    print(f"{'case':<52} {'ours ms':>9} {'base ms':>9} {'ratio':>7}  baseline", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("lora", "full"):
            step_rows(kind, repeats)
            train_rows(kind, 3 if args.quick else 7, 100 if args.quick else 200, folder)


if __name__ == "__main__":
    main()
