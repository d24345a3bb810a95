# Tests the private modules' own units: multiopt_lab._src.distributed.data_parallel,
#   multiopt_lab._src.distributed.launch, multiopt_lab._src.distributed.status,
#   multiopt_lab._src.distributed.sync.
"""Data-parallel training over mx.distributed: two real ranks on localhost.

The multi-rank tests start ``mlx.launch --backend ring -n 2`` through
:func:`launch` (free ports, a wall-clock limit, every rank killed on
failure); each takes a few seconds.
"""

import json
import os
import subprocess
import sys
import textwrap
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pandas as pd
import pytest

from multiopt_lab import (
    DataParallel, DistributedRunError, History, MultiOptimizer, RankGuard, launch, load_checkpoint,
    save_checkpoint,
)
from multiopt_lab._src.distributed.data_parallel import data_parallel
from multiopt_lab._src.distributed.status import read_status

SCRIPT = "multiopt_lab.examples.scripts.train_data_parallel"
LIMIT_S = 90  # generous: the machine is shared; a healthy run takes a few seconds


def run_script(arguments, ranks):
    """Run the example script on ``ranks`` ranks (1: a plain process)."""
    arguments = [str(a) for a in arguments]
    if ranks == 1:
        subprocess.run([sys.executable, "-m", SCRIPT, *arguments], check=True,
                       timeout=LIMIT_S, capture_output=True)
        return None
    return launch(["-m", SCRIPT, *arguments], ranks=ranks, timeout_s=LIMIT_S).wait()


def load_bytes(path):
    return {k: np.array(v) for k, v in mx.load(str(path)).items()}


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    """8 steps on 2 ranks, and the same 8 global batches in one process."""
    folder = tmp_path_factory.mktemp("data_parallel")
    common = ["--model", "gpt", "--steps", 8, "--batch-size", 32, "--print-every", 4,
              "--per-parameter"]
    # A notebook would follow the file like this while the run writes it.
    follower = History.follow(folder / "history.csv")
    run = launch(["-m", SCRIPT, *map(str, [*common, "--history", folder / "history.csv",
                                           "--checkpoint", folder / "checkpoint",
                                           "--dump", folder / "rank{rank}.safetensors"])],
                 ranks=2, timeout_s=LIMIT_S)
    while run.poll() is None and time.monotonic() - run.started < LIMIT_S:
        follower.refresh()
        time.sleep(0.05)
    result = run.wait()
    follower.refresh()
    run_script([*common, "--dump", folder / "single.safetensors"], ranks=1)
    return folder, result, follower


@pytest.mark.slow
class TestTwoRanks:
    def test_ranks_end_with_bit_identical_parameters_and_optimizer_state(self, two_rank_run):
        folder, *_ = two_rank_run
        rank0, rank1 = load_bytes(folder / "rank0.safetensors"), load_bytes(folder / "rank1.safetensors")
        assert sorted(rank0) == sorted(rank1)
        assert any(k.startswith("optimizer.states.0.") for k in rank0)
        # Per-parameter metrics follow the averaged gradients: the same bits on every rank.
        assert rank0["optimizer.metrics.parameter_sums"].shape[1] == 3
        for key in rank0:
            assert rank0[key].tobytes() == rank1[key].tobytes(), key

    def test_result_matches_one_process_on_the_concatenated_batch(self, two_rank_run):
        folder, *_ = two_rank_run
        ranked, single = load_bytes(folder / "rank0.safetensors"), load_bytes(folder / "single.safetensors")
        assert sorted(ranked) == sorted(single)
        for key in ranked:
            np.testing.assert_allclose(ranked[key], single[key], rtol=1e-4, atol=1e-5, err_msg=key)
        # Both groups took all 8 steps.
        assert ranked["optimizer.states.0.step"] == ranked["optimizer.states.1.step"] == 8

    def test_rank_0_alone_streams_the_history_with_per_group_metrics(self, two_rank_run):
        folder, result, follower = two_rank_run
        history = History.load(folder / "history.csv")
        assert follower.frame.equals(history.frame), "following the file as it grew lost rows"
        frame = history.frame
        loss = frame[frame.metric == "loss"]
        assert loss.step.tolist() == list(range(1, 9))  # once per step: one writer
        for label in ("matrices", "vectors", "total"):
            rows = frame[(frame.group == label) & (frame.metric == "grad_norm")]
            assert rows.step.tolist() == list(range(1, 9)), label
            assert np.isfinite(rows.value).all()
        assert history.metadata()["ranks"] == 2
        assert history.is_finished()
        parameters = history.parameters
        assert sorted(parameters.step.unique()) == list(range(1, 9))
        assert set(parameters.group.unique()) == {"matrices", "vectors"}
        pd.testing.assert_frame_equal(follower.parameters, parameters)
        # Printing happens on rank 0 only.
        assert result.stdout.count("step     8") == 1

    def test_rank_0_saves_the_checkpoint(self, two_rank_run):
        folder, *_ = two_rank_run
        info = json.loads((folder / "checkpoint" / "checkpoint.json").read_text())
        assert (info["step"], info["ranks"]) == (8, 2)
        assert sorted(p.name for p in (folder / "checkpoint").iterdir()) == sorted(
            ["checkpoint.json", *info["files"].values()])

    def test_every_rank_resumes_from_the_checkpoint(self, two_rank_run, tmp_path):
        folder, *_ = two_rank_run
        common = ["--model", "gpt", "--steps", 12, "--batch-size", 32]
        run_script([*common, "--resume", folder / "checkpoint",
                    "--dump", tmp_path / "resumed{rank}.safetensors"], ranks=2)
        run_script([*common, "--dump", tmp_path / "straight.safetensors"], ranks=1)
        rank0 = load_bytes(tmp_path / "resumed0.safetensors")
        rank1 = load_bytes(tmp_path / "resumed1.safetensors")
        straight = load_bytes(tmp_path / "straight.safetensors")
        for key in rank0:
            assert rank0[key].tobytes() == rank1[key].tobytes(), key
            np.testing.assert_allclose(rank0[key], straight[key], rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.slow
class TestFailures:
    def test_a_failing_rank_ends_the_run_with_an_error_naming_it(self, tmp_path):
        started = time.monotonic()
        with pytest.raises(DistributedRunError) as caught:
            run_script(["--model", "gpt", "--steps", 20, "--batch-size", 32, "--fail-at-step", 2, "--fail-rank", 1,
                        "--history", tmp_path / "h.csv"], ranks=2)
        message = str(caught.value)
        assert "rank 1 failed after step 1: RuntimeError: failing on purpose at step 2" in message
        assert message.index("rank 1 failed") < message.index("rank 0")
        assert time.monotonic() - started < LIMIT_S / 2

    def test_a_hung_rank_is_stopped_by_the_watchdog(self, tmp_path):
        script = tmp_path / "hang.py"
        script.write_text(HANG_SCRIPT)
        started = time.monotonic()
        with pytest.raises(DistributedRunError) as caught:
            launch([str(script), "2"], ranks=2, timeout_s=LIMIT_S).wait()
        assert "no step finished within 2 s" in str(caught.value)
        assert time.monotonic() - started < LIMIT_S / 2

    def test_the_time_limit_stops_every_rank(self, tmp_path):
        script = tmp_path / "hang.py"
        script.write_text(HANG_SCRIPT)
        run = launch([str(script), "0"], ranks=2, timeout_s=LIMIT_S)
        # Starting two ranks (importing mlx) takes seconds on a loaded
        # machine: let both report before the time limit starts to bite.
        while any(read_status(run.run_dir, rank) is None for rank in range(2)):
            assert time.monotonic() - run.started < LIMIT_S, "the ranks never started"
            time.sleep(0.1)
        limit = round(time.monotonic() - run.started) + 2
        with pytest.raises(DistributedRunError, match=f"did not finish within {limit} s") as caught:
            run.wait(timeout_s=limit)
        # Status files are rewritten at most once a second: step 0 or 1.
        assert "rank 0 was still running, last report after step" in str(caught.value)
        for rank in range(2):
            pid = read_status(run.run_dir, rank)["pid"]
            assert not _alive(pid), f"rank {rank} (pid {pid}) survived the time limit"


HANG_SCRIPT = textwrap.dedent("""
    import sys, time
    from multiopt_lab import DataParallel
    from multiopt_lab import RankGuard
    parallel = DataParallel()
    timeout = float(sys.argv[1]) or None
    with RankGuard(parallel.group, step_timeout_s=timeout) as guard:
        for step in range(5):
            if step == 2 and parallel.rank == 1:
                time.sleep(600)
            parallel.reduce({"x": 1.0})
            guard.beat(step)
""")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = f"/proc/{pid}/stat"  # a zombie (Linux) is dead too
    return not os.path.exists(stat) or open(stat).read().split(")")[-1].split()[0] != "Z"


COLLECTIVES_SCRIPT = textwrap.dedent("""
    import json, sys
    import mlx.core as mx, mlx.nn as nn
    from multiopt_lab import DataParallel, OutOfSyncError
    parallel = DataParallel()
    rank, seen = parallel.rank, {}

    def error_of(fn):
        try:
            fn()
        except (ValueError, OutOfSyncError) as error:
            return f"{type(error).__name__}: {error}"

    seen["shard"] = parallel.shard({"x": mx.arange(6), "y": mx.arange(6) * 10})["y"].tolist()
    seen["uneven"] = error_of(lambda: parallel.shard(mx.arange(5)))
    seen["mean"] = parallel.reduce({"a": float(rank), "b": 2.0})
    seen["max"] = parallel.reduce({"a": float(rank)}, op="max")
    seen["sum"] = parallel.reduce({"a": 1.0}, op="sum")
    seen["average"] = parallel.average_gradients({"w": mx.array([float(rank)])})["w"].tolist()
    mx.random.seed(rank)  # different initialisations on purpose
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    seen["before"] = error_of(lambda: parallel.check_in_sync(model.parameters(), "parameters"))
    model.update(parallel.broadcast(model.parameters()))
    seen["after"] = error_of(lambda: parallel.check_in_sync(model.parameters(), "parameters"))
    bits = parallel.broadcast({"z": mx.array([-0.0 if rank == 0 else 1.0]), "empty": {}, "n": 3})
    seen["bits"] = [bits["z"].view(mx.uint32).tolist(), bits["empty"], bits["n"]]
    seen["layout"] = error_of(lambda: parallel.broadcast({"w": mx.zeros((rank + 1,))}))
    with open(f"{sys.argv[1]}/rank{rank}.json", "w") as out:
        json.dump(seen, out)
""")


@pytest.mark.slow
def test_collectives_on_two_ranks(tmp_path):
    script = tmp_path / "collectives.py"
    script.write_text(COLLECTIVES_SCRIPT)
    launch([str(script), str(tmp_path)], ranks=2, timeout_s=LIMIT_S).wait()
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert seen[0]["shard"] == [0, 10, 20] and seen[1]["shard"] == [30, 40, 50]
    assert "5 rows cannot be split evenly across 2 ranks" in seen[0]["uneven"]
    for rank in seen:
        assert rank["mean"] == {"a": 0.5, "b": 2.0}
        assert rank["max"] == {"a": 1.0} and rank["sum"] == {"a": 2.0}
        assert rank["average"] == [0.5]
        # Both ranks raise (not only the one that differs), naming rank 1.
        assert rank["before"].startswith("OutOfSyncError") and "rank 1:" in rank["before"]
        assert rank["after"] is None
        assert rank["bits"] == [[0x80000000], {}, 3]  # -0.0 arrived bit for bit
        assert "same paths, shapes and dtypes" in rank["layout"]


class TestOneProcess:
    """Without mlx.launch the group has one rank and every call is a no-op."""

    def test_calls_return_their_input(self):
        parallel = DataParallel()
        assert (parallel.rank, parallel.size, parallel.is_main) == (0, 1, True)
        tree = {"w": mx.array([1.0, -0.0])}
        assert parallel.broadcast(tree) is tree
        assert parallel.average_gradients(tree) is tree
        assert parallel.reduce({"loss": 2.5, "n": mx.array(3)}, op="sum") == {"loss": 2.5, "n": 3.0}
        assert parallel.reduce({}) == {}
        parallel.check_in_sync(tree)

    def test_shard_needs_a_shared_batch_dimension(self):
        parallel = DataParallel()
        x, y = parallel.shard((mx.zeros((4, 3)), mx.zeros((4,))))
        assert x.shape == (4, 3) and y.shape == (4,)
        with pytest.raises(ValueError, match="share their first"):
            parallel.shard((mx.zeros((4, 3)), mx.zeros((5,))))
        with pytest.raises(ValueError, match="share their first"):
            parallel.shard(mx.array(1.0))

    def test_reduce_rejects_an_unknown_operation_and_non_scalars(self):
        with pytest.raises(ValueError, match="one of"):
            DataParallel().reduce({"loss": 1.0}, op="median")
        with pytest.raises(ValueError, match=r"found shapes \{'loss': \(2,\)\}"):
            DataParallel().reduce({"loss": mx.array([1.0, 2.0]), "n": 3})

    def test_data_parallel_resolves_the_distributed_argument(self, monkeypatch):
        for name in ("MLX_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"):
            monkeypatch.delenv(name, raising=False)
        assert data_parallel(None) is None and data_parallel(False) is None
        assert isinstance(data_parallel(True), DataParallel)
        given = DataParallel()
        assert data_parallel(given) is given
        with pytest.raises(TypeError, match="found str"):
            data_parallel("ring")

    def test_rank_guard_writes_its_status(self, tmp_path):
        with RankGuard(run_dir=tmp_path, step_timeout_s=30) as guard:
            guard.beat(0)
            assert read_status(tmp_path, 0)["ok"] is None  # running
            guard.beat(1)
        status = read_status(tmp_path, 0)
        assert (status["ok"], status["step"], status["error"]) == (True, 1, None)
        with pytest.raises(KeyError):
            with RankGuard(run_dir=tmp_path):
                raise KeyError("lost")
        status = read_status(tmp_path, 0)
        assert (status["ok"], status["step"]) == (False, None)
        assert status["error"] == "KeyError: 'lost'"

    def test_rank_guard_rejects_a_bad_timeout(self):
        with pytest.raises(ValueError, match="step_timeout_s must be a finite number > 0, found 0"):
            RankGuard(step_timeout_s=0)


class TestCheckpointInOneProcess:
    def make(self):
        mx.random.seed(1)
        model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
        optimizer = MultiOptimizer([optim.Adam(1e-2), optim.SGD(0.1, momentum=0.9)], ["ndim == 2"])
        loss_and_grad = nn.value_and_grad(model, lambda m, x: (m(x) ** 2).mean())
        for _ in range(2):
            _, grads = loss_and_grad(model, mx.ones((5, 3)))
            optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state)
        return model, optimizer

    def test_round_trip(self, tmp_path):
        model, optimizer = self.make()
        save_checkpoint(tmp_path / "ck", model, optimizer, step=2)
        mx.random.seed(2)
        fresh = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
        fresh_opt = MultiOptimizer([optim.Adam(1e-2), optim.SGD(0.1, momentum=0.9)], ["ndim == 2"])
        assert load_checkpoint(tmp_path / "ck", fresh, fresh_opt) == 2
        for (path, a), (_, b) in zip(_flat(model.parameters()), _flat(fresh.parameters())):
            assert np.array_equal(np.array(a), np.array(b)), path
        saved = dict(_flat(optimizer.state["states"]))
        for path, value in _flat(fresh_opt.state["states"]):
            assert np.array_equal(np.array(value), np.array(saved[path])), path

    def test_a_checkpoint_of_another_model_changes_nothing(self, tmp_path):
        model, optimizer = self.make()
        save_checkpoint(tmp_path / "ck", model, optimizer, step=2)
        other = nn.Sequential(nn.Linear(3, 5), nn.LayerNorm(5), nn.Linear(5, 2))
        other_opt = MultiOptimizer([optim.Adam(1e-2), optim.SGD(0.1, momentum=0.9)], ["ndim == 2"])
        before = [np.array(v) for _, v in _flat(other.parameters())]
        state_before = [(k, np.array(v)) for k, v in _flat(other_opt.state)]
        with pytest.raises(ValueError, match=r"layers.0.weight: expected shape \(5, 3\), found \(4, 3\)"):
            load_checkpoint(tmp_path / "ck", other, other_opt)
        after = [np.array(v) for _, v in _flat(other.parameters())]
        assert all(np.array_equal(a, b) for a, b in zip(before, after))
        state_after = [(k, np.array(v)) for k, v in _flat(other_opt.state)]
        assert [k for k, _ in state_after] == [k for k, _ in state_before]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(state_before, state_after))

    def test_an_unfinished_checkpoint_is_refused(self, tmp_path):
        model, optimizer = self.make()
        save_checkpoint(tmp_path / "ck", model, optimizer, step=2)
        (tmp_path / "ck" / "checkpoint.json").unlink()
        with pytest.raises(FileNotFoundError, match="finished checkpoint"):
            load_checkpoint(tmp_path / "ck", model, optimizer)

    def test_a_folder_whose_checkpoint_json_names_no_files_is_refused(self, tmp_path):
        # Issue 28: folders of unnamed files (model.safetensors, optimizer.safetensors) were
        # never released; checkpoint.json names the files of every checkpoint there is.
        model, optimizer = self.make()
        folder = save_checkpoint(tmp_path / "ck", model, optimizer, step=2)
        info = json.loads((folder / "checkpoint.json").read_text())
        for kind, name in info.pop("files").items():
            (folder / name).rename(folder / f"{kind}.safetensors")
        (folder / "checkpoint.json").write_text(json.dumps(info))
        with pytest.raises(ValueError, match=r"checkpoint.json is corrupted: expected the files "
                                             r"model-<id>.safetensors.*found None"):
            load_checkpoint(folder, model, optimizer)


def _flat(tree):
    from mlx.utils import tree_flatten

    return [(k, v) for k, v in tree_flatten(tree) if isinstance(v, mx.array)]


TRAIN_SCRIPT = textwrap.dedent("""
    import sys
    import mlx.core as mx, mlx.optimizers as optim
    from mlx.utils import tree_flatten
    from multiopt_lab import examples
    from multiopt_lab import DataParallel
    from multiopt_lab import History
    from multiopt_lab import MultiOptimizer
    from multiopt_lab import train
    folder, ranks = sys.argv[1], int(sys.argv[2])
    parallel = DataParallel()
    mx.random.seed(parallel.rank)  # train() starts every rank from rank 0's parameters
    task = examples.sequence_task("reverse", batch_size=16, seed=3)
    model = examples.TinyGPT(task.vocab_size, dims=16, layers=1, heads=2)
    optimizer = MultiOptimizer([optim.Adam(1e-2), optim.SGD(0.1)], ["ndim == 2"], labels=["m", "v"])
    history = History(path=f"{folder}/history{ranks}.csv") if parallel.is_main else None
    train(model, optimizer, task.loss_fn, task.batch, 6, history=history, metrics_every=2,
          progress=False)
    mx.save_safetensors(f"{folder}/train{ranks}-rank{parallel.rank}.safetensors",
                        dict(tree_flatten(model.parameters())))
""")


@pytest.mark.slow
def test_train_is_data_parallel_under_mlx_launch(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    launch([str(script), str(tmp_path), "2"], ranks=2, timeout_s=LIMIT_S).wait()
    # One process, seeded like rank 0, on the whole batches.
    subprocess.run([sys.executable, str(script), str(tmp_path), "1"], check=True, timeout=LIMIT_S)
    rank0, rank1 = load_bytes(tmp_path / "train2-rank0.safetensors"), load_bytes(tmp_path / "train2-rank1.safetensors")
    single = load_bytes(tmp_path / "train1-rank0.safetensors")
    for key in rank0:
        assert rank0[key].tobytes() == rank1[key].tobytes(), key
        np.testing.assert_allclose(rank0[key], single[key], rtol=1e-4, atol=1e-5, err_msg=key)
    assert not (tmp_path / "history2-rank1.csv").exists()
    frame = History.load(tmp_path / "history2.csv").frame
    reference = History.load(tmp_path / "history1.csv").frame
    assert frame.step[frame.metric == "loss"].tolist() == list(range(1, 7))
    assert sorted(set(frame.group)) == ["-", "m", "total", "v"]
    np.testing.assert_allclose(frame.value, reference.value, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
class TestWhoFailedFirst:
    def test_a_rank_killed_with_sigkill_is_named_first(self, tmp_path):
        with pytest.raises(DistributedRunError) as caught:
            run_script(["--model", "mlp", "--steps", 50, "--batch-size", 32, "--kill-at-step", 2,
                        "--fail-rank", 1, "--step-timeout", 20], ranks=2)
        lines = [line.strip() for line in str(caught.value).splitlines()]
        failures = [line for line in lines if line.startswith("rank ")]
        assert failures[0].startswith("rank 1 was killed by signal 9 (SIGKILL"), failures
        assert "stopped by the launcher" not in failures[0]

    def test_rank_0_failing_to_save_is_named_first(self, tmp_path):
        blocker = tmp_path / "not_a_folder"
        blocker.write_text("a file where the checkpoint folder should be")
        with pytest.raises(DistributedRunError) as caught:
            run_script(["--model", "mlp", "--steps", 3, "--batch-size", 32,
                        "--checkpoint", blocker / "ck"], ranks=2)
        failures = [line.strip() for line in str(caught.value).splitlines()
                    if line.strip().startswith("rank ")]
        assert failures[0].startswith("rank 0 failed"), failures
        assert "OtherRankFailed" in failures[1] and failures[1].startswith("rank 1")

    def test_other_rules_on_one_rank_stop_train_at_the_first_step(self, tmp_path):
        script = tmp_path / "rules.py"
        script.write_text(OTHER_RULES_SCRIPT)
        with pytest.raises(DistributedRunError) as caught:
            launch([str(script)], ranks=2, timeout_s=LIMIT_S).wait()
        message = str(caught.value)
        assert "split the parameters alike" in message and "after step 0" not in message
        assert "failed before its first step" in message or "failed after" in message
        for rank in range(2):  # both ranks stopped at once, each saying why
            status = json.loads((_run_dir(message) / f"rank-{rank}.json").read_text())
            assert status["ok"] is False and "OutOfSyncError" in status["error"]

    def test_a_taken_port_is_given_up_for_another(self, monkeypatch):
        import socket

        import multiopt_lab._src.distributed.launch as launching

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            draws = iter([port, None])
            real = launching._free_port_range
            monkeypatch.setattr(launching, "_free_port_range",
                                lambda count: next(draws) or real(count))
            script = "import mlx.core as mx; print(mx.distributed.init().size())"
            run = launch(["-c", script], ranks=2, timeout_s=LIMIT_S)
            result = run.wait()
        assert run.restarts == 1 and result.stdout.split() == ["2", "2"]
        assert "Couldn't bind socket" in (run.run_dir / "launcher.err.attempt1").read_text()


def _run_dir(message):
    from pathlib import Path

    return Path(message.split("Logs in ")[1].split(";")[0])


OTHER_RULES_SCRIPT = textwrap.dedent("""
    import mlx.core as mx, mlx.optimizers as optim
    from multiopt_lab import examples
    from multiopt_lab import DataParallel
    from multiopt_lab import RankGuard
    from multiopt_lab import MultiOptimizer
    from multiopt_lab import train
    parallel = DataParallel()
    with RankGuard(parallel.group, step_timeout_s=30) as guard:
        task = examples.sequence_task("reverse", batch_size=16, seed=3)
        model = examples.TinyGPT(task.vocab_size, dims=16, layers=1, heads=2)
        rules = ["ndim == 2"] if parallel.rank == 0 else ["ndim == 1"]  # a rank gone astray
        optimizer = MultiOptimizer([optim.Adam(1e-2), optim.SGD(0.1)], rules)
        train(model, optimizer, task.loss_fn, task.batch, 6, progress=False)
""")


class TestFailureOrder:
    def test_a_consequence_reported_first_still_comes_after_its_cause(self):
        from multiopt_lab._src.distributed.status import failure_lines

        statuses = [{"ok": False, "step": 3, "error": "OSError: disk full", "time": 10.2},
                    {"ok": False, "step": 3, "error": "OtherRankFailed: write failed on another "
                     "rank", "time": 10.1, "consequence": True}]
        assert failure_lines(statuses, "")[0].startswith("rank 0 failed after step 3: OSError")

    def test_a_watchdog_timeout_is_a_consequence(self):
        from multiopt_lab._src.distributed.status import failure_lines

        statuses = [{"ok": False, "step": 1, "error": "no step finished", "time": 1.0,
                     "timed_out": True},
                    {"ok": False, "step": 1, "error": "ValueError: bad batch", "time": 5.0}]
        assert failure_lines(statuses, "")[0].startswith("rank 1 failed")

    def test_sigterm_is_the_launcher_and_sigkill_is_not(self):
        from multiopt_lab._src.distributed.status import failure_lines

        lines = failure_lines([{"ok": False, "step": 4, "error": "RuntimeError: [ring] peer "
                                "closed", "time": 9.0}, {"ok": None, "step": 4, "time": 8.0},
                               {"ok": None, "step": 4, "time": 8.5}],
                              "Node with rank 1 exited with code -9\n"
                              "Node with rank 2 exited with code -15")
        assert lines[0].startswith("rank 1 was killed by signal 9")
        assert lines[-1] == "rank 2 was stopped by the launcher"

    def test_the_partition_is_compared_with_rules_and_layout(self):
        from multiopt_lab._src.distributed.sync import partition_description

        def stepped(rules):
            opt = MultiOptimizer([optim.Adam(1e-2), optim.SGD(0.1)], rules)
            params = {"w": mx.ones((2, 2)), "b": mx.ones((2,))}
            opt.apply_gradients(params, params)
            return partition_description(opt)

        assert stepped(["ndim == 2"]) == stepped(["ndim == 2"])
        assert stepped(["ndim == 2"]) != stepped(["ndim == 1"])
        assert stepped(["ndim == 2"]) != stepped(["ndim >= 2"])  # same routing, other rule
