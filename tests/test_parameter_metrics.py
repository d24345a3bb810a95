# Tests the private module multiopt_lab._src.optimizer.metrics's own unit.
"""Per-parameter metrics (issue 25): each parameter's norms, eager and compiled, rolled up by group.

Every value is checked against a hand computation from snapshots of the
parameters before and after the recorded step and of the gradients, in
float64 (relative error under 1e-5), eagerly, under ``compile=True``, under
``compile_step`` and MLX's own ``mx.compile`` pattern, inside
``multiopt_lab.train`` and inside mlx-lm's ``train()``.
"""

from __future__ import annotations

import contextlib
import io
import math
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_unflatten

from multiopt_lab import MultiOptimizer, compile_step, train
from multiopt_lab._src.optimizer.metrics import leaf_sums

RELATIVE = 1e-5


class Mixed(nn.Module):
    """Pieces of every kind the metrics code handles: one large matrix (> 16,384 elements,
    reduced alone), several of one size (stacked), biases and norms (small, batched by
    AdamW), one odd-sized vector (alone)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(300, 64)               # 19,200 elements
        self.blocks = [nn.Linear(64, 64) for _ in range(3)]
        self.norms = [nn.LayerNorm(64) for _ in range(2)]
        self.head = nn.Linear(64, 7)

    def __call__(self, tokens):
        x = self.embed(tokens)
        for block, norm in zip(self.blocks, self.norms + [lambda v: v]):
            x = norm(nn.gelu(block(x)))
        return self.head(x).mean(axis=1)


def make(**kwargs):
    mx.random.seed(3)
    model = Mixed()
    mx.eval(model.parameters())
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-2)],
                               ['ndim == 2 and not glob("embed*")'],
                               metrics_every=kwargs.pop("every", 1), per_parameter=True, **kwargs)
    return model, optimizer


def batch(i):
    mx.random.seed(100 + i)
    return mx.random.randint(0, 300, (4, 5)), mx.random.normal((4, 7))


def loss_fn(model, tokens, target):
    return mx.mean((model(tokens) - target) ** 2)


def snapshot(model):
    return {path: np.array(value, dtype=np.float64)
            for path, value in tree_flatten(model.trainable_parameters())}


def gradients_at(model, before, data):
    """The gradients of ``loss_fn`` at the parameters ``before`` (float64 copies)."""
    after = model.trainable_parameters()
    model.update(_nest(before))
    _, grads = nn.value_and_grad(model, loss_fn)(model, *data)
    model.update(after)
    return {path: np.array(g, dtype=np.float64) for path, g in tree_flatten(grads)}


def _nest(flat_values):
    return tree_unflatten([(p, mx.array(v.astype(np.float32))) for p, v in flat_values.items()])


def expected(before, after, grads):
    rows = {}
    for path in before:
        update = np.linalg.norm(after[path] - before[path])
        param = np.linalg.norm(before[path])
        rows[path] = {"update_norm": update, "grad_norm": np.linalg.norm(grads[path]),
                      "param_norm": param, "update_ratio": update / param}
    return rows


def assert_hand_computed(metrics, before, after, grads):
    want = expected(before, after, grads)
    assert list(metrics) == list(before), "one row per parameter, in tree order"
    for path, values in want.items():
        for name, value in values.items():
            got = metrics[path][name]
            assert abs(got - value) <= RELATIVE * abs(value), (path, name, got, value)


def assert_rolled_up(optimizer):
    """A group's squared norms are the sums of its parameters' squared norms."""
    per_parameter, groups = optimizer.parameter_metrics, optimizer.metrics
    for label in optimizer.labels:
        rows = [per_parameter[p] for p in per_parameter if per_parameter[p]["group"] == label]
        for name in ("update_norm", "grad_norm", "param_norm"):
            rolled = math.sqrt(sum(r[name] ** 2 for r in rows))
            assert groups[label][name] == pytest.approx(rolled, rel=1e-6), (label, name)
        ratio = groups[label]["update_norm"] / groups[label]["param_norm"]
        assert groups[label]["update_ratio"] == pytest.approx(ratio, rel=1e-12)


def eager_step(model, optimizer, data):
    loss, grads = nn.value_and_grad(model, loss_fn)(model, *data)
    optimizer.update(model, grads)
    mx.eval(loss, model.parameters(), optimizer.state)


@pytest.mark.parametrize("batch_small", [True, False], ids=["batched", "one-by-one"])
def test_eager_values_equal_a_hand_computation(batch_small):
    model, optimizer = make()
    optimizer.batch_small = batch_small
    eager_step(model, optimizer, batch(0))
    before = snapshot(model)
    eager_step(model, optimizer, batch(1))
    after = snapshot(model)
    assert optimizer.parameter_metrics.step == 2
    assert_hand_computed(optimizer.parameter_metrics, before, after,
                         gradients_at(model, before, batch(1)))
    assert_rolled_up(optimizer)


def test_compile_true_values_equal_a_hand_computation():
    model, optimizer = make(compile=True)
    for i in range(2):
        eager_step(model, optimizer, batch(i))
    before = snapshot(model)
    eager_step(model, optimizer, batch(2))
    assert optimizer.compilations >= 1
    assert_hand_computed(optimizer.parameter_metrics, before, snapshot(model),
                         gradients_at(model, before, batch(2)))
    assert_rolled_up(optimizer)


def test_compile_step_records_every_k_and_values_equal_a_hand_computation():
    model, optimizer = make(every=3)
    grad_fn = nn.value_and_grad(model, loss_fn)

    def step(*data):
        loss, grads = grad_fn(model, *data)
        optimizer.update(model, grads)
        return loss

    compiled = compile_step(step, model, optimizer)
    seen = []
    for i in range(7):
        before = snapshot(model)
        mx.eval(compiled(*batch(i)), model.state, optimizer.state)
        metrics = optimizer.parameter_metrics
        seen.append(metrics.step)
    assert seen == [1, 1, 1, 4, 4, 4, 7]
    assert compiled.traces == 2  # one trace with the metrics, one without
    assert_hand_computed(metrics, before, snapshot(model), gradients_at(model, before, batch(6)))
    assert_rolled_up(optimizer)


def test_mlx_compile_pattern_values_equal_a_hand_computation():
    model, optimizer = make()
    optimizer.init(model)  # MLX's pattern: the state exists before tracing
    state = [model.state, optimizer.state]
    grad_fn = nn.value_and_grad(model, loss_fn)

    @partial(mx.compile, inputs=state, outputs=state)
    def step(tokens, target):
        loss, grads = grad_fn(model, tokens, target)
        optimizer.update(model, grads)
        return loss

    for i in range(2):
        mx.eval(step(*batch(i)), state)
    before = snapshot(model)
    mx.eval(step(*batch(2)), state)
    assert optimizer.parameter_metrics.step == 3
    assert_hand_computed(optimizer.parameter_metrics, before, snapshot(model),
                         gradients_at(model, before, batch(2)))
    assert_rolled_up(optimizer)


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_train_records_them_and_they_equal_a_hand_computation(compile):
    model, optimizer = make()
    optimizer.per_parameter = False
    snapshots = {0: snapshot(model)}
    history = train(model, optimizer, loss_fn, batch, 5, metrics_every=2, compile=compile,
                    per_parameter=True, progress=False,
                    callbacks=[lambda step, loss, h: snapshots.__setitem__(step, snapshot(model))])
    assert optimizer.per_parameter is False, "train() puts the optimizer's setting back"
    frame = history.parameters
    assert list(frame.columns) == ["run", "step", "path", "group", "metric", "value"]
    assert sorted(frame.step.unique()) == [1, 3, 5]
    assert list(frame.metric.cat.categories) == ["update_norm", "grad_norm", "param_norm",
                                                 "update_ratio"]
    last = frame[frame.step == 5]
    recorded = {(r.path, r.metric): r.value for r in last.itertuples()}
    want = expected(snapshots[4], snapshots[5], gradients_at(model, snapshots[4], batch(4)))
    for path, values in want.items():
        assert history.parameter_groups()[path] == optimizer.assign(model).labels[path]
        for name, value in values.items():
            assert abs(recorded[(path, name)] - value) <= RELATIVE * value, (path, name)
    # The group rows of the same step are the roll-up of these.
    groups = history.frame[(history.frame.step == 5) & (history.frame.metric == "grad_norm")]
    for row in groups[groups.group.isin(optimizer.labels)].itertuples():
        rolled = math.sqrt(sum(v ** 2 for (p, m), v in recorded.items()
                               if m == "grad_norm" and history.parameter_groups()[p] == row.group))
        assert row.value == pytest.approx(rolled, rel=1e-6)


def test_leaf_sums_keep_the_order_of_mixed_sizes_and_dtypes():
    mx.random.seed(0)
    shapes = [(5,), (64, 64), (5,), (3, 3), (20000,), (64, 64), (5,)]
    pieces = []
    for k, shape in enumerate(shapes):
        dtype = mx.bfloat16 if k == 2 else mx.float32
        old = mx.random.normal(shape).astype(dtype)
        pieces.append((mx.random.normal(shape), old, (old + 0.01 * mx.random.normal(shape)).astype(dtype)))
    got = np.array(leaf_sums(pieces))
    for row, (g, old, new) in zip(got, pieces):
        o, n = np.array(old.astype(mx.float32), np.float64), np.array(new.astype(mx.float32), np.float64)
        want = [np.sum((n - o) ** 2), np.sum(np.array(g, np.float64) ** 2), np.sum(o ** 2)]
        np.testing.assert_allclose(row, want, rtol=2e-6)


def test_off_by_default_and_the_state_holds_one_row_per_parameter_only_when_on():
    model, optimizer = make()
    eager_step(model, optimizer, batch(0))
    count = len(tree_flatten(model.trainable_parameters()))
    assert optimizer.state["metrics"]["parameter_sums"].shape == (count, 3)
    optimizer.per_parameter = False
    assert "parameter_sums" not in optimizer.state["metrics"]
    eager_step(model, optimizer, batch(1))
    assert optimizer.parameter_metrics is None and optimizer.metrics_step == 2
    plain = MultiOptimizer([optim.SGD(0.1)], metrics_every=1)
    assert plain.per_parameter is False and plain.parameter_metrics is None


def test_a_repartition_forgets_the_rows_of_the_old_routing():
    model, optimizer = make()
    eager_step(model, optimizer, batch(0))
    assert optimizer.parameter_metrics is not None
    optimizer.repartition(["ndim == 2"], model)
    assert optimizer.parameter_metrics is None
    eager_step(model, optimizer, batch(1))
    labels = {p: v["group"] for p, v in optimizer.parameter_metrics.items()}
    assert labels["embed.weight"] == "muon"


def test_bad_per_parameter_values_are_refused():
    with pytest.raises(TypeError, match="per_parameter must be True or False, found str 'yes'"):
        MultiOptimizer([optim.SGD(0.1)], per_parameter="yes")
    optimizer = MultiOptimizer([optim.SGD(0.1)])
    with pytest.raises(TypeError, match="found 1"):
        optimizer.per_parameter = 1
    assert optimizer.per_parameter is False
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="per_parameter=True needs a multiopt_lab MultiOptimizer"):
        train(model, optim.SGD(0.1), lambda m: m(mx.ones((1, 2))).sum(), lambda i: (), 1,
              per_parameter=True, progress=False)
    pytest.importorskip("mlx_lm")
    from multiopt_lab.integrations.mlx_lm import LabCallback

    with pytest.raises(TypeError, match="per_parameter must be True or False, found str 'yes'"):
        LabCallback(MultiOptimizer([optim.SGD(0.1)]), model, per_parameter="yes")
    with pytest.raises(ValueError, match="needs a multiopt_lab MultiOptimizer and metrics=True"):
        LabCallback(MultiOptimizer([optim.SGD(0.1)]), model, metrics=False, per_parameter=True)
    with pytest.raises(ValueError, match="found SGD"):
        LabCallback(optim.SGD(0.1), model, per_parameter=True)


def test_inside_mlx_lm_train_they_equal_a_hand_computation(tmp_path):
    pytest.importorskip("mlx_lm")
    from mlx_lm.tuner.trainer import TrainingArgs, default_loss, iterate_batches
    from mlx_lm.tuner.trainer import train as mlx_lm_train

    from mlx_lm_models import build, token_dataset
    from multiopt_lab.integrations.mlx_lm import LabCallback

    model = build("qwen3")
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(3e-3)], ["ndim >= 2"])
    args = TrainingArgs(batch_size=4, iters=4, steps_per_report=2, steps_per_eval=10_000,
                        steps_per_save=10_000, adapter_file=str(tmp_path / "adapters.safetensors"))
    seen = []

    def recording_batches(*a, **k):
        for data in iterate_batches(*a, **k):
            if k.get("loop"):
                seen.append((snapshot(model), data))
            yield data

    callback = LabCallback(optimizer, model, args=args, iterate_batches=recording_batches,
                           per_parameter=True)
    np.random.seed(0)
    mx.random.seed(0)
    with contextlib.redirect_stdout(io.StringIO()):
        mlx_lm_train(model, optimizer, token_dataset(), args=args, training_callback=callback,
                     iterate_batches=callback.iterate_batches)
    mx.eval(model.parameters())
    frame = callback.history.parameters
    assert sorted(frame.step.unique()) == [2, 4]
    before, data = seen[-1]
    after = snapshot(model)
    model.update(_nest(before))
    _, grads = nn.value_and_grad(model, default_loss)(model, *data)
    grads = {p: np.array(g, np.float64) for p, g in tree_flatten(grads)}
    model.update(_nest(after))
    want = expected(before, after, grads)
    last = frame[frame.step == 4]
    recorded = {(r.path, r.metric): r.value for r in last.itertuples()}
    assert {p for p, _ in recorded} == set(want)
    for path, values in want.items():
        for name, value in values.items():
            assert abs(recorded[(path, name)] - value) <= RELATIVE * value, (path, name)


@pytest.mark.parametrize("seed", range(4))
def test_random_trees_of_mixed_sizes_dtypes_and_optimizers(seed):
    """Buckets whose leaves share no common width, odd sizes, 3-D stacks, bfloat16: every
    parameter's sums equal numpy's, with and without the batched update."""
    rng = np.random.default_rng(seed)
    shapes = [(int(rng.integers(1, 40)),) for _ in range(6)] + [
        (int(rng.integers(1, 9)), int(rng.integers(1, 70))) for _ in range(6)] + [
        (3, 8, 16), (130, 130), (7,)]
    wide = [(4, 256), (8, 256), (2, 512)]  # a bucket of their own (bfloat16): rows 1024 wide
    parameters = {f"p{i}": mx.array(rng.standard_normal(shape), dtype=mx.bfloat16 if i % 5 == 4
                                     else mx.float32) for i, shape in enumerate(shapes)}
    parameters.update({f"w{i}": mx.array(rng.standard_normal(shape), dtype=mx.bfloat16)
                       for i, shape in enumerate(wide)})
    gradients = {k: mx.array(rng.standard_normal(v.shape), dtype=v.dtype) for k, v in parameters.items()}
    for batch_small in (True, False):
        optimizer = MultiOptimizer([optim.AdamW(1e-2), optim.SGD(0.1, momentum=0.9), optim.Muon(0.02)],
                                   ["ndim == 1", 'ndim == 3 or size < 100 or glob("w*")'],
                                   metrics_every=1,
                                   per_parameter=True)
        optimizer.batch_small = batch_small
        new = optimizer.apply_gradients(gradients, parameters)
        mx.eval(new, optimizer.state)
        metrics = optimizer.parameter_metrics
        for path, old in parameters.items():
            o = np.array(old.astype(mx.float32), np.float64)
            n = np.array(new[path].astype(mx.float32), np.float64)
            g = np.array(gradients[path].astype(mx.float32), np.float64)
            want = {"update_norm": np.linalg.norm(n - o), "grad_norm": np.linalg.norm(g),
                    "param_norm": np.linalg.norm(o)}
            for name, value in want.items():
                assert metrics[path][name] == pytest.approx(value, rel=RELATIVE), (path, name)
        assert_rolled_up(optimizer)


def test_parameter_metrics_is_a_mapping_like_any_other():
    # A Mapping of path -> metrics: values(), items() and keys() are the mapping's. Its array
    # attribute was called ``values`` and hid Mapping.values(): pm.values() raised
    # "'numpy.ndarray' object is not callable".
    mx.random.seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt = MultiOptimizer([optim.SGD(0.1), optim.Adam(0.01)], ["ndim == 2"], metrics_every=1,
                         per_parameter=True)
    grads = model.trainable_parameters()
    opt.update(model, grads)
    metrics = opt.parameter_metrics
    assert list(metrics.keys()) == list(metrics.paths)
    assert list(metrics.values()) == [metrics[path] for path in metrics.paths]
    assert dict(metrics.items())["layers.0.weight"]["group"] == metrics["layers.0.weight"]["group"]
    assert metrics.table.shape == (len(metrics.paths), 4)
    assert metrics.table[0, 0] == metrics[metrics.paths[0]]["update_norm"]
