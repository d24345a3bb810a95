# Tests the private module multiopt_lab._src.optimizer.parameter_metrics's own unit.
"""History.parameters (issue 25): per-parameter rows, compact, through CSV, Parquet and follow."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from multiopt_lab import History
from multiopt_lab._src.optimizer.parameter_metrics import ParameterMetrics

COLUMNS = ["run", "step", "path", "group", "metric", "value"]


def layer_paths(layers):
    paths, groups = [], []
    for i in range(layers):
        for name in ("attn.q.weight", "attn.k.weight", "mlp.up.weight", "norm.weight"):
            paths.append(f"layers.{i}.{name}")
            groups.append("adamw" if name.startswith("norm") else "muon")
    return ["embed.weight", *paths, "norm.weight"], ["adamw", *groups, "adamw"]


def recorded(layers=2, steps=(1, 11, 21), run="a", history=None, seed=0):
    history = history if history is not None else History()
    paths, groups = layer_paths(layers)
    rng = np.random.default_rng(seed)
    for step in steps:
        values = rng.random((len(paths), 4))
        history.record(step, loss=1.0 / step, run=run,
                       parameters=ParameterMetrics(step, paths, groups, values))
    return history


class TestRecording:
    def test_long_rows_in_tree_order_with_categorical_names(self):
        history = recorded(layers=1, steps=(1,))
        frame = history.parameters
        assert list(frame.columns) == COLUMNS
        assert [str(d) for d in frame.dtypes] == ["category", "int64", "category", "category",
                                                  "category", "float64"]
        assert list(frame.path.cat.categories) == layer_paths(1)[0]
        assert frame.metric.tolist()[:4] == ["update_norm", "grad_norm", "param_norm", "update_ratio"]
        assert len(frame) == 6 * 4 and len(history.frame) == 1  # the loss row only

    def test_a_mapping_records_like_parameter_metrics(self):
        history = History()
        history.record(5, parameters={"w": {"group": "sgd", "update_norm": 2.0, "grad_norm": 1.0},
                                      "b": {"group": "sgd", "grad_norm": 3.0, "update_norm": 4.0}})
        assert history.parameters[["path", "metric", "value"]].values.tolist() == [
            ["w", "update_norm", 2.0], ["w", "grad_norm", 1.0],
            ["b", "update_norm", 4.0], ["b", "grad_norm", 3.0]]

    @pytest.mark.parametrize("bad, error, match", [
        ({"w": 1.0}, TypeError, "path -> {'group'"),
        ({"w": {"update_norm": 1.0}}, TypeError, "path -> {'group'"),
        ({"w": {"group": "g", "a": 1.0}, "b": {"group": "g", "c": 1.0}}, ValueError, "same metrics"),
        ({"w": {"group": "g", "a": "big"}}, TypeError, "must be a scalar"),
        ({"w\nx": {"group": "g", "a": 1.0}}, ValueError, "line break"),
        ([1, 2], TypeError, "parameter_metrics or a mapping"),
    ])
    def test_bad_parameters_record_nothing(self, bad, error, match):
        history = recorded(layers=1, steps=(1,))
        before = history.parameters.copy()
        with pytest.raises(error, match=match):
            history.record(2, loss=1.0, parameters=bad)
        pd.testing.assert_frame_equal(history.parameters, before)
        assert history.last_step() == 1

    def test_latest_values_and_groups_per_run(self):
        history = recorded(steps=(1, 11), run="a", seed=1)
        recorded(steps=(1,), run="b", history=history, seed=2)
        frame = history.parameters
        a = history.parameter_values("grad_norm", run="a")
        want = frame[(frame.run == "a") & (frame.step == 11) & (frame.metric == "grad_norm")]
        assert a.tolist() == want.value.tolist() and list(a.index) == want.path.tolist()
        assert history.parameter_groups("b")["layers.0.norm.weight"] == "adamw"
        assert history.parameter_values("loss", run="a").empty

    def test_memory_stays_small_per_value(self):
        # 32 layers x 4 parameters + 2, recorded 100 times (the benchmark times 1,000).
        history = recorded(layers=32, steps=range(1, 1001, 10))
        frame = history.parameters
        assert len(frame) == 130 * 4 * 100
        per_row = frame.memory_usage(deep=True).sum() / len(frame)
        assert per_row < 24, f"{per_row:.1f} bytes a row: the names are not categorical"


class TestFiles:
    def test_csv_round_trip_and_any_reader(self, tmp_path):
        history = recorded()
        path = tmp_path / "h.csv"
        history.save(path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "h.csv", "h.parameters.csv", "h.runs.jsonl"]
        loaded = History.load(path)
        pd.testing.assert_frame_equal(loaded.parameters, history.parameters, check_exact=True)
        plain = pd.read_csv(tmp_path / "h.parameters.csv")
        pd.testing.assert_frame_equal(plain, history.parameters.astype(
            {c: str for c in ("run", "path", "group", "metric")}), check_exact=True)

    def test_parquet_round_trip(self, tmp_path):
        pytest.importorskip("pyarrow")
        history = recorded()
        history.save(tmp_path / "h.parquet")
        loaded = History.load(tmp_path / "h.parquet")
        pd.testing.assert_frame_equal(loaded.parameters, history.parameters, check_exact=True)
        plain = pd.read_parquet(tmp_path / "h.parameters.parquet")
        assert plain.value.tolist() == history.parameters.value.tolist()

    def test_latest_values_of_a_loaded_history_need_no_frame(self, tmp_path):
        history = recorded(steps=(1, 11))
        history.save(tmp_path / "h.csv")
        loaded = History.load(tmp_path / "h.csv")
        for metric in ("grad_norm", "update_ratio"):
            got, want = loaded.parameter_values(metric, run="a"), history.parameter_values(metric, run="a")
            assert got.to_dict() == want.to_dict() and list(got.index) == list(want.index)
            assert got.attrs["step"] == 11
        assert loaded.parameter_groups("a") == history.parameter_groups("a")
        assert loaded._records.parameters._frame is None, "a monitor's read built the whole frame"

    def test_stream_then_follow_gets_every_row(self, tmp_path):
        path = tmp_path / "live.csv"
        early = recorded(steps=(1,))
        early.stream_to(path)  # what was recorded before streaming is written first
        follower = History.follow(path)
        assert len(follower.parameters) == len(early.parameters)
        recorded(steps=(11, 21), history=early)
        follower.refresh()
        pd.testing.assert_frame_equal(follower.parameters, early.parameters, check_exact=True)
        pd.testing.assert_frame_equal(History.load(path).parameters, early.parameters)

    def test_follow_a_real_writer_process_with_parameter_rows(self, tmp_path):
        path = tmp_path / "run.csv"
        writer = textwrap.dedent(f"""
            import time
            import numpy as np
            from multiopt_lab import History
            history = History(path={str(path)!r})
            history.start_run("remote", {{"labels": ["muon", "adamw"]}})
            for step in range(1, 21):
                values = {{f"p{{i}}": {{"group": "muon", "update_ratio": step * 0.1 + i}}
                          for i in range(50)}}
                history.record(step, loss=1.0 / step, parameters=values)
                time.sleep(0.02)
            history.end_run()
            """)
        process = subprocess.Popen([sys.executable, "-c", writer])
        follower = History.follow(path)
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            follower.refresh()
            seen.append(len(follower.parameters))
            if follower.runs and follower.is_finished("remote"):
                break
            time.sleep(0.03)
        assert process.wait(timeout=30) == 0
        follower.refresh()
        assert len(follower.parameters) == 20 * 50
        assert len({n for n in seen if 0 < n < 1000}) >= 2, f"never piecemeal: {seen}"
        pd.testing.assert_frame_equal(follower.parameters, History.load(path).parameters)
        assert follower.parameter_values(run="remote")["p3"] == pytest.approx(5.0)

    def test_a_follower_reads_every_file_again_when_one_is_replaced(self, tmp_path):
        path = tmp_path / "h.csv"
        recorded(run="old").save(path)
        follower = History.follow(path)
        assert follower.runs == ("old",)
        recorded(run="new", steps=(1,)).save(path)
        follower.refresh()
        assert follower.runs == ("new",)
        assert list(follower.parameters.run.unique()) == ["new"]

    def test_a_bad_parameter_line_is_skipped_by_a_follower_and_named_by_load(self, tmp_path):
        path = tmp_path / "h.csv"
        recorded(steps=(1,)).save(path)
        with open(tmp_path / "h.parameters.csv", "a") as file:
            file.write('"a",2,"w","g","update_norm"\n"a",2,"w","g","update_norm",0.5\n')
        with pytest.raises(ValueError, match=r"h.parameters.csv is not a per-parameter history "
                                             r"file: line 42 of the per-parameter file"):
            History.load(path)
        with pytest.warns(RuntimeWarning, match="skipped 1 line"):
            follower = History.follow(path)
        assert follower.parameters.step.tolist()[-1] == 2
        assert "h.parameters.csv: expected 6 fields" in str(follower.skipped_lines)

    @pytest.mark.parametrize("text", [
        '"run","step","path","group","metric","value"\n"a",1.5,"w","g","m",1.0\n',
        '"run","step","path","group","metric","value"\n"a",1,"w","g","m","big"\n',
        '"a","b"\n1,2\n',
    ])
    def test_a_crafted_parameter_file_is_a_value_error(self, tmp_path, text):
        path = tmp_path / "h.csv"
        History().save(path)
        (tmp_path / "h.parameters.csv").write_text(text)
        with pytest.raises(ValueError, match="h.parameters.csv is not a per-parameter history file"):
            History.load(path)
