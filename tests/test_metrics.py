# Tests the private module multiopt_lab._src.optimizer.metrics's own unit.
"""Per-group metrics: values, cadence, non-finite flags, eager and compiled."""

import math
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_map

from multiopt_lab import MultiOptimizer, compile_step


def setup(every=1, big=False):
    mx.random.seed(2)
    width = 128 if big else 8  # big: 128 x 128 matrices skip the batched update
    model = nn.Sequential(nn.Linear(4, width), nn.Linear(width, width), nn.Linear(width, 2))
    opt = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"],
                         metrics_every=every)
    return model, opt


def grads_for(model, scale=0.1):
    return tree_map(lambda p: mx.random.normal(p.shape) * scale, model.trainable_parameters())


def expected_metrics(before, after, grads, groups):
    out = {}
    for label, paths in groups.items():
        def sq(tree, paths=paths):
            return sum(float(np.sum(np.square(np.array(tree[p], dtype=np.float64)))) for p in paths)
        update = {p: after[p] - before[p] for p in paths}
        out[label] = (math.sqrt(sq(update)), math.sqrt(sq(grads)), math.sqrt(sq(before)))
    return out


@pytest.mark.parametrize("big", [False, True], ids=["batched", "per-parameter"])
def test_values_are_the_norms_of_the_update_gradient_and_parameters(big):
    model, opt = setup(big=big)
    assert opt.metrics is None and opt.metrics_step is None
    before = dict(tree_flatten(model.parameters()))
    grads = grads_for(model)
    opt.update(model, grads)
    mx.eval(model.parameters(), opt.state)
    after = dict(tree_flatten(model.parameters()))
    flat_grads = dict(tree_flatten(grads))
    groups = {label: opt.assign(model).paths_of(label) for label in opt.labels}
    expected = expected_metrics(before, after, flat_grads, groups)
    metrics = opt.metrics
    assert opt.metrics_step == 1
    for label, (update, grad, param) in expected.items():
        got = metrics[label]
        assert got["update_norm"] == pytest.approx(update, rel=1e-4)
        assert got["grad_norm"] == pytest.approx(grad, rel=1e-4)
        assert got["param_norm"] == pytest.approx(param, rel=1e-4)
        assert got["update_ratio"] == pytest.approx(update / param, rel=1e-4)
    assert metrics["muon"]["learning_rate"] == pytest.approx(0.02)
    assert metrics["adamw"]["learning_rate"] == pytest.approx(1e-3)
    total_update = math.sqrt(sum(v[0] ** 2 for v in expected.values()))
    assert metrics["total"]["update_norm"] == pytest.approx(total_update, rel=1e-4)
    assert math.isnan(metrics["total"]["learning_rate"])


def test_recorded_on_steps_one_then_every_k():
    model, opt = setup(every=3)
    grads = grads_for(model)
    seen = []
    for _ in range(7):
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
        seen.append(opt.metrics_step)
    assert seen == [1, 1, 1, 4, 4, 4, 7]


def test_state_holds_metrics_only_while_on_and_checkpoints_skip_them(tmp_path):
    from multiopt_lab import save_state

    model, opt = setup(every=1)
    opt.update(model, grads_for(model))
    assert set(opt.state) == {"states", "metrics"}
    save_state(tmp_path / "s.safetensors", opt)
    assert not any(k.startswith("metrics") for k in mx.load(str(tmp_path / "s.safetensors")))
    opt.metrics_every = None
    assert list(opt.state) == ["states"]


def test_non_finite_gradients_are_flagged_with_their_group():
    model, opt = setup()
    grads = grads_for(model)
    grads["layers"][0]["bias"] = mx.full((8,), float("inf"))
    opt.update(model, grads)
    assert opt.nonfinite_groups == {"adamw": ("gradient", "update")}
    assert math.isinf(opt.metrics["adamw"]["grad_norm"])
    assert math.isfinite(opt.metrics["muon"]["grad_norm"])


def test_learning_rate_is_nan_for_an_optimizer_without_one():
    mx.random.seed(0)
    model = nn.Linear(3, 3)
    opt = MultiOptimizer([optim.Adafactor(), optim.SGD(0.5)], ["ndim == 2"], metrics_every=1)
    opt.update(model, grads_for(model))
    assert math.isnan(opt.metrics["adafactor"]["learning_rate"])
    assert opt.metrics["sgd"]["learning_rate"] == 0.5


def test_bad_interval_is_refused():
    with pytest.raises(ValueError, match="positive int"):
        MultiOptimizer([optim.SGD(0.1)], metrics_every=0)
    opt = MultiOptimizer([optim.SGD(0.1)])
    with pytest.raises(ValueError, match="found 'x'"):
        opt.metrics_every = "x"
    assert opt.metrics_every is None


def _loss(model, x):
    return (model(x) ** 2).mean()


def test_plain_mx_compile_records_every_step():
    model, opt = setup(every=5)
    opt.init(model.trainable_parameters())
    grad_fn = nn.value_and_grad(model, _loss)
    state = [model.state, opt.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x):
        loss, grads = grad_fn(model, x)
        opt.update(model, grads)
        return loss

    steps = []
    for _ in range(3):
        mx.eval(step(mx.ones((2, 4))), state)
        steps.append(opt.metrics_step)
    assert steps == [1, 2, 3]
    assert opt.metrics["muon"]["update_norm"] > 0


def test_compile_step_records_every_k_and_matches_eager():
    def run(compiled):
        model, opt = setup(every=2)
        grad_fn = nn.value_and_grad(model, _loss)

        def step(x):
            loss, grads = grad_fn(model, x)
            opt.update(model, grads)
            return loss

        stepper = compile_step(step, model, opt) if compiled else step
        seen = []
        for i in range(5):
            mx.eval(stepper(mx.ones((2, 4)) * (i + 1)), model.state, opt.state)
            seen.append((opt.metrics_step, opt.metrics["adamw"]["update_norm"]))
        return seen, stepper

    eager, _ = run(False)
    compiled, stepper = run(True)
    assert [s for s, _ in compiled] == [s for s, _ in eager] == [1, 1, 3, 3, 5]
    for (_, a), (_, b) in zip(eager, compiled):
        assert a == pytest.approx(b, rel=1e-4)
    assert stepper.traces == 2  # one trace that records, one that does not


def test_metrics_turned_on_after_capturing_the_compile_state_are_recorded():
    model, opt = setup(every=None)
    opt.init(model.trainable_parameters())
    grad_fn = nn.value_and_grad(model, _loss)
    state = [model.state, opt.state]  # captured while metrics were off

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x):
        loss, grads = grad_fn(model, x)
        opt.update(model, grads)
        return loss

    opt.metrics_every = 1  # the very dict captured above now holds the metric arrays
    for _ in range(2):
        mx.eval(step(mx.ones((2, 4))), model.state, opt.state)
    assert opt.metrics_step == 2 and opt.metrics["muon"]["grad_norm"] > 0


def test_metrics_left_inside_a_compiled_step_warn_and_do_not_break():
    model, opt = setup(every=1)
    opt.init(model.trainable_parameters())
    grad_fn = nn.value_and_grad(model, _loss)
    state = [model.state, {"states": opt.state["states"]}]  # a copy: no room for the metrics

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x):
        loss, grads = grad_fn(model, x)
        opt.update(model, grads)
        return loss

    with pytest.warns(UserWarning, match="not among its outputs"):
        for _ in range(2):
            mx.eval(step(mx.ones((2, 4))), model.state, opt.state["states"])
        assert opt.metrics is None
    mx.eval(opt.state)  # no placeholder of the trace was left in it


def numpy_sums(gradient, old, new):
    """``[update, gradient, parameter]`` sums of squares in float64, from numpy."""
    def as64(a):
        return np.array(a.astype(mx.float32), dtype=np.float64)
    return np.array([np.sum((as64(new) - as64(old)) ** 2), np.sum(as64(gradient) ** 2),
                     np.sum(as64(old) ** 2)])


@pytest.mark.parametrize("n", [5, 9000, 16385, 3 * 8192, 65536, (1 << 20) + 3])
def test_group_sums_match_numpy_at_every_size(n):
    from multiopt_lab._src.optimizer.metrics import group_sums, piece_sums

    g, old, new = (mx.random.normal((n,), key=mx.random.key(i)) for i in range(3))
    got = np.array(group_sums([piece_sums(g, old, new), piece_sums(g[:7], old[:7], new[:7])]))
    expected = numpy_sums(g, old, new) + numpy_sums(g[:7], old[:7], new[:7])
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_pieces_sums_concatenate_small_pieces_and_match_numpy():
    from multiopt_lab._src.optimizer.metrics import pieces_sums

    shapes = [(3,), (64, 64), (8192,), (9000,), (130, 130), (1,)]
    pieces = []
    for k, shape in enumerate(shapes):
        g, old, new = (mx.random.normal(shape, key=mx.random.key(10 * k + i)) for i in range(3))
        if k == 1:  # a bfloat16 piece among float32 ones
            g, old, new = (a.astype(mx.bfloat16) for a in (g, old, new))
        pieces.append((g, old, new))
    expected = sum(numpy_sums(*piece) for piece in pieces)
    np.testing.assert_allclose(np.array(pieces_sums(pieces)), expected, rtol=1e-5)
    np.testing.assert_allclose(np.array(pieces_sums(pieces[:1])), numpy_sums(*pieces[0]),
                               rtol=1e-5)
    assert pieces_sums([]).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float16])
def test_large_low_precision_pieces_match_numpy_eager_and_compiled(dtype):
    from multiopt_lab._src.optimizer.metrics import piece_sums

    # Above the stacked size, in a 2-D shape whose size is no multiple of 1024,
    # then a second size through the same (shape-independent) fused kernel.
    for shape in [(150, 131), (300, 200)]:
        g, old, new = (mx.random.normal(shape, key=mx.random.key(i)).astype(dtype)
                       for i in range(3))
        expected = numpy_sums(g, old, new)
        np.testing.assert_allclose(np.array(piece_sums(g, old, new)), expected, rtol=1e-5)
        compiled = mx.compile(piece_sums)
        np.testing.assert_allclose(np.array(compiled(g, old, new)), expected, rtol=1e-5)


def test_large_transposed_and_3d_pieces_match_numpy():
    from multiopt_lab._src.optimizer.metrics import piece_sums

    # Gradients can be non-contiguous views (a transpose's) and parameters N-D:
    # the folded kernel slices a flat copy, never the strided view itself.
    for shape, transpose in [((200, 300), True), ((8, 64, 65), False)]:
        g, old, new = (mx.random.normal(shape, key=mx.random.key(i)) for i in range(3))
        if transpose:
            g = g.T
            old, new = old.T, new.T
        np.testing.assert_allclose(np.array(piece_sums(g, old, new)), numpy_sums(g, old, new),
                                   rtol=1e-5)


def test_many_small_pieces_of_a_few_sizes_match_numpy():
    from multiopt_lab._src.optimizer.metrics import ACROSS, pieces_sums

    # A transformer stack's leaves: many pieces of one size (more than one
    # fold's worth, and a lone leftover), a few of another, one of a third,
    # a bfloat16 among float32 ones and a transposed view.
    shapes = [(16, 16)] * (ACROSS + 1) + [(40,)] * 3 + [(7, 3)]
    pieces = []
    for k, shape in enumerate(shapes):
        g, old, new = (mx.random.normal(shape, key=mx.random.key(100 + 3 * k + i)) for i in range(3))
        if k == 2:
            g, old, new = (a.astype(mx.bfloat16) for a in (g, old, new))
        if k == 5:
            g = g.T
        pieces.append((g, old, new))
    expected = sum(numpy_sums(*piece) for piece in pieces)
    np.testing.assert_allclose(np.array(pieces_sums(pieces)), expected, rtol=1e-5)
    np.testing.assert_allclose(np.array(mx.compile(lambda *a: pieces_sums(
        [tuple(a[3 * k:3 * k + 3]) for k in range(len(pieces))]))(*[x for p in pieces for x in p])),
        expected, rtol=1e-5)


def test_empty_and_scalar_pieces_fold_too():
    from multiopt_lab._src.optimizer.metrics import pieces_sums

    empty = (mx.zeros((0,)), mx.zeros((0,)), mx.zeros((0,)))
    scalar = (mx.array(2.0), mx.array(1.0), mx.array(3.0))  # update 2, gradient 2, old 1
    assert pieces_sums([empty] * 3).tolist() == [0.0, 0.0, 0.0]
    assert pieces_sums([empty, empty] + [scalar] * 20).tolist() == [80.0, 80.0, 20.0]
