# Tests the private module multiopt_lab._src.training.history's own unit.
"""History: recording, tidy frame, runs, save/load, streaming and following a file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import mlx.core as mx
import pandas as pd
import pytest

from multiopt_lab import History
from multiopt_lab._src.training.history import SCALAR_GROUP, TOTAL_GROUP

METRICS = {
    "matrices": {"update_norm": 0.5, "grad_norm": 2.0, "param_norm": 10.0, "update_ratio": 0.05, "learning_rate": 0.01},
    "vectors": {"update_norm": 0.1, "grad_norm": 1.0, "param_norm": 1.0, "update_ratio": 0.1, "learning_rate": 0.001},
    "total": {"update_norm": 0.51, "grad_norm": 2.2, "param_norm": 10.05},
}


def sample_history() -> History:
    history = History()
    history.start_run("muon, \"quoted\" #1", {"labels": ["matrices", "vectors"], "rules": ["ndim == 2"]})
    history.record(1, loss=2.5, metrics=METRICS, accuracy=0.1)
    history.record(2, loss=mx.array(2.0))
    history.start_run("adam")
    history.record(1, loss=3.0)
    history.end_run()
    return history


class TestRecord:
    def test_tidy_rows_and_dtypes(self):
        history = History()
        history.record(1, loss=2.5, metrics={"g": {"update_norm": 0.5}}, accuracy=0.25)
        frame = history.frame
        assert list(frame.columns) == ["run", "step", "group", "metric", "value"]
        assert frame.to_dict("records") == [
            {"run": "run1", "step": 1, "group": SCALAR_GROUP, "metric": "loss", "value": 2.5},
            {"run": "run1", "step": 1, "group": SCALAR_GROUP, "metric": "accuracy", "value": 0.25},
            {"run": "run1", "step": 1, "group": "g", "metric": "update_norm", "value": 0.5},
        ]
        assert frame["step"].dtype == "int64" and frame["value"].dtype == "float64"

    def test_frame_is_cached_until_the_next_record(self):
        history = History()
        history.record(1, loss=1.0)
        first = history.frame
        assert history.frame is first
        history.record(2, loss=0.5)
        assert history.frame is not first and len(history.frame) == 2

    def test_accepts_mx_and_numpy_scalars(self):
        import numpy as np

        history = History()
        history.record(1, loss=mx.array(1.5), other=np.float32(0.25))
        assert history.last("loss") == 1.5 and history.last("other") == 0.25

    def test_bad_value_records_nothing(self):
        history = History()
        history.record(1, loss=1.0)
        with pytest.raises(TypeError, match="must be a scalar"):
            history.record(2, loss=0.5, metrics={"g": {"update_norm": "big"}})
        with pytest.raises(TypeError, match="must map group"):
            history.record(2, metrics={"g": 3.0})
        assert len(history) == 1 and history.last_step() == 1

    def test_last_values_and_labels(self):
        history = sample_history()
        run = history.runs[0]
        assert history.labels(run) == ("matrices", "vectors")
        assert history.last("update_ratio", group="vectors", run=run) == 0.1
        assert history.last("loss", run=run) == 2.0
        assert history.last("loss", group="nope", run=run) is None
        values = history.last_values(run)
        assert values[TOTAL_GROUP]["grad_norm"] == 2.2 and values[SCALAR_GROUP]["accuracy"] == 0.1

    def test_labels_without_metadata_follow_first_appearance(self):
        history = History()
        history.record(1, metrics={"b": {"update_norm": 1.0}, "total": {"update_norm": 1.0}, "a": {"update_norm": 1.0}})
        assert history.labels() == ("b", "a")


class TestRuns:
    def test_runs_metadata_and_environment(self):
        history = sample_history()
        assert history.runs == ('muon, "quoted" #1', "adam")
        meta = history.metadata(history.runs[0])
        assert meta["rules"] == ["ndim == 2"]
        assert meta["device"] == str(mx.default_device()) and meta["mlx_version"] == mx.__version__
        assert history.is_finished("adam") and not history.is_finished(history.runs[0])

    def test_duplicate_run_name_is_refused(self):
        history = History()
        history.start_run("a")
        with pytest.raises(ValueError, match="already exists"):
            history.start_run("a")
        assert history.runs == ("a",)

    def test_unknown_run_names_the_known_ones(self):
        with pytest.raises(KeyError, match="its runs are"):
            sample_history().metadata("missing")

    def test_subscribers_see_each_change_until_unsubscribed(self):
        history, events = History(), []
        unsubscribe = history.subscribe(lambda h, event: events.append(event))
        history.start_run("a")
        history.record(1, loss=1.0)
        history.end_run()
        unsubscribe()
        history.record(2, loss=1.0)
        assert events == ["start_run", "record", "end_run"]


    def test_compare_puts_runs_side_by_side(self):
        history = sample_history()
        table = history.compare()
        assert list(table.columns) == list(history.runs) and table.index.tolist() == [1, 2]
        assert table.loc[2, "adam"] != table.loc[2, "adam"]  # NaN: adam has no step 2
        assert history.compare("update_norm", group="matrices", runs=[history.runs[0]]).iloc[0, 0] == 0.5
        with pytest.raises(KeyError, match="its runs are"):
            history.compare(runs=["nope"])


class TestFiles:
    def test_csv_round_trip_keeps_rows_and_metadata(self, tmp_path):
        history = sample_history()
        path = tmp_path / "h.csv"
        history.save(path)
        loaded = History.load(path)
        pd.testing.assert_frame_equal(loaded.frame, history.frame)
        assert loaded.runs == history.runs
        assert loaded.metadata(history.runs[0]) == history.metadata(history.runs[0])
        assert loaded.is_finished("adam")
        # Any CSV reader gets the rows back.
        assert len(pd.read_csv(path, comment="#")) == len(history)

    def test_parquet_round_trip(self, tmp_path):
        pytest.importorskip("pyarrow")
        history = sample_history()
        history.save(tmp_path / "h.parquet")
        loaded = History.load(tmp_path / "h.parquet")
        pd.testing.assert_frame_equal(loaded.frame, history.frame)
        assert loaded.metadata("adam") == history.metadata("adam")

    def test_load_rejects_a_file_that_is_not_a_history(self, tmp_path):
        path = tmp_path / "x.csv"
        path.write_text("a,b\n1,2\n")
        with pytest.raises(ValueError, match="metadata line"):
            History.load(path)

    def test_stream_writes_every_record_at_once(self, tmp_path):
        path = tmp_path / "live.csv"
        history = History()
        history.record(1, loss=1.0)
        history.stream_to(path)
        history.record(2, loss=0.5)
        assert History.load(path).frame.equals(history.frame)
        with pytest.raises(FileExistsError):
            History(path=path)

    def test_follow_reads_only_complete_lines(self, tmp_path):
        path = tmp_path / "partial.csv"
        follower = History.follow(path)
        assert follower.refresh() == 0
        path.write_text('"run","step","group","metric","value"\n"a",1,"-","loss",1.0\n"a",2,"-","lo')
        assert follower.refresh() == 1
        with open(path, "a") as file:
            file.write('ss",0.5\n')
        assert follower.refresh() == 1
        assert follower.frame["value"].tolist() == [1.0, 0.5]

    def test_follow_restarts_when_the_file_is_rewritten(self, tmp_path):
        path = tmp_path / "h.csv"
        sample_history().save(path)
        follower = History.follow(path)
        History().save(path)
        follower.refresh()
        assert len(follower) == 0 and follower.runs == ()

    def test_follow_a_real_writer_process(self, tmp_path):
        path = tmp_path / "run.csv"
        writer = textwrap.dedent(
            f"""
            import sys, time
            from multiopt_lab import History
            history = History(path={str(path)!r})
            history.start_run("remote", {{"labels": ["w"]}})
            for step in range(1, 31):
                history.record(step, loss=1.0 / step, metrics={{"w": {{"update_norm": step * 0.1}}}})
                time.sleep(0.02)
            history.end_run()
            """
        )
        process = subprocess.Popen([sys.executable, "-c", writer])
        follower = History.follow(path)
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            follower.refresh()
            seen.append(len(follower))
            if follower.runs and follower.is_finished("remote"):
                break
            time.sleep(0.05)
        assert process.wait(timeout=30) == 0
        assert follower.is_finished("remote")
        assert len(follower) == 60 and follower.labels("remote") == ("w",)
        assert len({count for count in seen if 0 < count < 60}) >= 2, f"rows never arrived piecemeal: {seen}"
        pd.testing.assert_frame_equal(follower.frame, History.load(path).frame)

    def test_watch_refreshes_in_the_background(self, tmp_path):
        path = tmp_path / "w.csv"
        writer = History(path=path)
        follower = History.follow(path)
        events = []
        follower.subscribe(lambda h, event: events.append(event))
        follower.watch(interval=0.02)
        try:
            writer.record(1, loss=1.0)
            deadline = time.monotonic() + 5
            while len(follower) < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            follower.stop_watching()
        assert follower.last("loss") == 1.0 and "refresh" in events

    def test_refresh_needs_a_followed_file(self):
        with pytest.raises(ValueError, match="History.follow"):
            History().refresh()

    def test_save_never_leaves_a_partial_file(self, tmp_path, monkeypatch):
        path = tmp_path / "h.csv"
        History().save(path)
        before = path.read_text()
        history = sample_history()
        monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(OSError):
            history.save(path)
        assert path.read_text() == before
        assert [p.name for p in tmp_path.iterdir()] == ["h.csv"]


HEADER = '"run","step","group","metric","value"\n'


def _wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


class TestFollowFaults:
    def test_a_bad_line_is_skipped_and_reported_and_its_neighbours_kept(self, tmp_path):
        path = tmp_path / "h.csv"
        path.write_text(HEADER + '"a",1,"-","loss",1.0\nnot a row\n"a",2,"-","loss",0.5\n')
        with pytest.warns(RuntimeWarning, match="line 3"):
            follower = History.follow(path)
        assert follower.frame["step"].tolist() == [1, 2]
        skipped = follower.skipped_lines
        assert skipped.count == 1 and skipped.last[0][0] == 3
        assert "line 3" in str(skipped)

    def test_rows_after_a_bad_line_keep_arriving(self, tmp_path):
        path = tmp_path / "h.csv"
        path.write_text(HEADER + '"a",1,"-","loss",1.0\n')
        follower = History.follow(path)
        with open(path, "a") as file:
            file.write('"a",2,"-","loss"\n#run {broken json\n"a",3,"-","loss",0.25\n')
        with pytest.warns(RuntimeWarning, match="skipped 2 lines"):
            assert follower.refresh() == 1
        with open(path, "a") as file:
            file.write('"a",4,"-","loss",0.125\n')
        assert follower.refresh() == 1
        assert follower.frame["step"].tolist() == [1, 3, 4]
        assert [number for number, _ in follower.skipped_lines.last] == [3, 4]

    def test_the_watcher_lives_through_bad_lines_and_failing_subscribers(self, tmp_path):
        path = tmp_path / "h.csv"
        path.write_text(HEADER)
        follower = History.follow(path)
        calls = []

        def flaky(history, event):
            calls.append(event)
            if len(calls) == 1:
                raise RuntimeError("a monitor that failed once")

        follower.subscribe(flaky)
        follower.watch(interval=0.01)
        try:
            with pytest.warns(RuntimeWarning):
                with open(path, "a") as file:
                    file.write('"a",1,"-","loss",1.0\n\x00garbage\n')
                    file.flush()
                assert _wait_for(lambda: len(follower) == 1)
                with open(path, "a") as file:
                    file.write('"a",2,"-","loss",0.5\n')
                assert _wait_for(lambda: len(follower) == 2), "the watcher died"
        finally:
            follower.stop_watching()
        assert follower.skipped_lines.count == 1

    def test_a_file_replaced_by_a_longer_one_is_read_from_its_start(self, tmp_path):
        path = tmp_path / "h.csv"
        first = History()
        first.record(1, loss=1.0, run="old")
        first.save(path)
        follower = History.follow(path)
        assert follower.runs == ("old",)
        second = History()
        for step in range(1, 40):
            second.record(step, loss=1.0 / step, run="new")
        second.save(path)  # a new file at that path, longer than the first
        follower.refresh()
        assert follower.runs == ("new",)
        pd.testing.assert_frame_equal(follower.frame, second.frame)
        assert follower.skipped_lines.count == 0

    def test_a_file_rewritten_in_place_with_more_lines_is_read_from_its_start(self, tmp_path):
        path = tmp_path / "h.csv"
        path.write_text(HEADER + '"old",1,"-","loss",1.0\n')
        follower = History.follow(path)
        with open(path, "r+") as file:  # same file, new content from byte 0
            file.write(HEADER + "".join(f'"new",{s},"-","loss",{s}.0\n' for s in range(1, 30)))
        follower.refresh()
        assert follower.runs == ("new",) and len(follower) == 29


class TestLabelsAFileCanHold:
    @pytest.mark.parametrize("bad", ["a\nb", "a\rb", "\ud800"])
    def test_a_group_or_metric_that_a_file_cannot_hold_is_refused(self, tmp_path, bad):
        history = History()
        history.record(1, loss=1.0)
        before = history.frame.copy()
        with pytest.raises(ValueError, match="line break|not text"):
            history.record(2, metrics={bad: {"update_norm": 1.0}})
        with pytest.raises(ValueError, match="line break|not text"):
            history.record(2, metrics={"ok": {bad: 1.0}})
        pd.testing.assert_frame_equal(history.frame, before)
        history.save(tmp_path / "h.csv")
        pd.testing.assert_frame_equal(History.load(tmp_path / "h.csv").frame, before)

    @pytest.mark.parametrize("bad", ["a\nb", "a\r\nb"])
    def test_a_run_name_or_optimizer_label_with_a_line_break_is_refused(self, bad):
        import mlx.optimizers as optim

        history = History()
        with pytest.raises(ValueError, match="line break"):
            history.start_run(bad)
        with pytest.raises(ValueError, match="line break"):
            history.start_run("ok", {"labels": ["adamw", bad]})
        with pytest.raises(ValueError, match="line break"):
            history.record(1, loss=1.0, run=bad)
        assert history.runs == () and len(history) == 0
        history.start_run("fine", optimizer=optim.SGD(0.1))
        assert history.runs == ("fine",)

    def test_quotes_commas_and_hashes_round_trip(self, tmp_path):
        history = History()
        history.record(1, metrics={'a,"b"#c': {"x,y": 1.0}}, run='r "1", #2')
        history.save(tmp_path / "h.csv")
        pd.testing.assert_frame_equal(History.load(tmp_path / "h.csv").frame, history.frame)


class TestCraftedFiles:
    @pytest.mark.parametrize("text, where", [
        (HEADER + '#run {"run": "a", "metadata": {}\n', "line 2"),
        (HEADER + '#run ["a"]\n', "line 2"),
        (HEADER + '#run {"run": 3}\n', "line 2"),
        (HEADER + '#run {"run": "a", "metadata": [1]}\n', "line 2"),
        (HEADER + '#end {}\n', "line 2"),
        (HEADER + '"a",1,"-","loss"\n', "line 2"),
        (HEADER + '"a","x","-","loss",1.0\n', "line 2"),
        (HEADER + '"a",1.5,"-","loss",1.0\n', "line 2"),
        (HEADER + '"a",1,"-","loss","big"\n', "line 2"),
        (HEADER + '"a",1,2,"loss",1.0\n', "line 2"),
        (HEADER + '"a,1,"-","loss",1.0\n', "line 2"),
        (HEADER + "\n\n" + '"a",1,"-","loss",nan\n' + "plain\n", "line 5"),
    ])
    def test_a_crafted_csv_is_a_value_error_naming_the_line(self, tmp_path, text, where):
        path = tmp_path / "h.csv"
        path.write_text(text)
        with pytest.raises(ValueError, match=where) as info:
            History.load(path)
        assert str(path) in str(info.value)

    def test_invalid_utf8_is_a_value_error(self, tmp_path):
        path = tmp_path / "h.csv"
        path.write_bytes(HEADER.encode() + b'"a",1,"-","\xff",1.0\n')
        with pytest.raises(ValueError, match="not UTF-8"):
            History.load(path)

    @pytest.fixture
    def parquet(self, tmp_path):
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        def write(columns, meta=b'{"runs": {}, "ended": []}'):
            table = pa.table(columns)
            if meta is not None:
                table = table.replace_schema_metadata({b"multiopt_lab": meta})
            path = tmp_path / "h.parquet"
            pq.write_table(table, path)
            return path

        return write

    GOOD = {"run": ["a"], "step": [1], "group": ["-"], "metric": ["loss"], "value": [0.5]}

    @pytest.mark.parametrize("change, meta", [
        ({"step": None}, None),                                  # a column missing
        ({}, b"[1, 2]"),                                         # metadata not an object
        ({}, b'{"runs": [1], "ended": []}'),                     # runs not a mapping
        ({}, b'{"runs": {"a": 3}, "ended": []}'),                # a run's metadata not a mapping
        ({}, b'{"runs": {}, "ended": "a"}'),                     # ended not a list
        ({}, b"{not json"),
        ({}, b"\xff\xfe"),
        ({"step": ["one"]}, b'{"runs": {}, "ended": []}'),       # a step that is text
        ({"step": [1.5]}, b'{"runs": {}, "ended": []}'),
        ({"value": ["x"]}, b'{"runs": {}, "ended": []}'),
        ({"run": [None]}, b'{"runs": {}, "ended": []}'),         # a missing name
        ({"group": [7]}, b'{"runs": {}, "ended": []}'),
    ])
    def test_a_crafted_parquet_file_is_a_value_error(self, parquet, change, meta):
        columns = {k: v for k, v in {**self.GOOD, **change}.items() if v is not None}
        path = parquet(columns, meta)
        with pytest.raises(ValueError) as info:
            History.load(path)
        assert type(info.value) is ValueError, repr(info.value)

    def test_bytes_that_are_not_parquet_are_a_value_error(self, tmp_path):
        pytest.importorskip("pyarrow")
        path = tmp_path / "h.parquet"
        path.write_bytes(b"PAR1" + bytes(100))
        with pytest.raises(ValueError, match="not a Parquet history file"):
            History.load(path)


OLD_FORM = (HEADER
            + '#run {"run": "adamw", "metadata": {"labels": ["hidden"], "device": "Device(cpu, 0)"}}\n'
            + '"adamw",1,"-","loss",2.5\n'
            + '"adamw",1,"hidden","update_norm",0.0131\n'
            + '#end {"run": "adamw"}\n'
            + '#run {"run": "sgd", "metadata": {}}\n'
            + '"sgd",1,"-","loss",3.0\n')


class TestPlainCsv:
    """Issue 27 item 6: a saved CSV is the frame, for any CSV reader; metadata beside it."""

    def test_pandas_reads_a_saved_csv_into_exactly_the_frame(self, tmp_path):
        history = sample_history()
        history.record(3, loss=0.1 + 0.2, run="adam")  # rows of two runs interleaved
        path = tmp_path / "h.csv"
        history.save(path)
        pd.testing.assert_frame_equal(pd.read_csv(path), history.frame, check_exact=True)

    def test_pandas_reads_a_streamed_csv_into_exactly_the_frame(self, tmp_path):
        path = tmp_path / "live.csv"
        history = History(path=path)
        history.start_run("a", {"labels": ["w"]})
        history.record(1, loss=2.0, metrics={"w": {"update_norm": 1 / 3}})
        history.end_run()
        history.start_run("b")
        history.record(1, loss=float("nan"))
        pd.testing.assert_frame_equal(pd.read_csv(path), history.frame, check_exact=True)
        assert History.load(path).metadata("a")["labels"] == ["w"]

    def test_the_run_metadata_lives_beside_the_csv_and_loads_back(self, tmp_path):
        history = sample_history()
        history.save(tmp_path / "h.csv")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv", "h.runs.jsonl"]
        assert "#" not in (tmp_path / "h.csv").read_text().replace("#1", "")
        loaded = History.load(tmp_path / "h.csv")
        for run in history.runs:
            assert loaded.metadata(run) == history.metadata(run)
        assert loaded.is_finished("adam") and not loaded.is_finished(history.runs[0])

    def test_a_file_of_the_old_form_still_loads(self, tmp_path):
        path = tmp_path / "old.csv"
        path.write_text(OLD_FORM)
        loaded = History.load(path)
        assert loaded.runs == ("adamw", "sgd")
        assert loaded.metadata("adamw")["labels"] == ["hidden"]
        assert loaded.is_finished("adamw") and not loaded.is_finished("sgd")
        assert loaded.last("update_norm", group="hidden", run="adamw") == 0.0131
        follower = History.follow(path)
        pd.testing.assert_frame_equal(follower.frame, loaded.frame)

    def test_saving_again_removes_a_sidecar_the_new_history_has_no_use_for(self, tmp_path):
        path = tmp_path / "h.csv"
        sample_history().save(path)
        History().save(path)
        assert [p.name for p in tmp_path.iterdir()] == ["h.csv"]
        assert History.load(path).runs == ()

    def test_a_crafted_runs_file_is_a_value_error_naming_the_line(self, tmp_path):
        path = tmp_path / "h.csv"
        sample_history().save(path)
        (tmp_path / "h.runs.jsonl").write_text('{"event": "run", "run": "a", "metadata": {}}\n'
                                               '{"event": "start", "run": "a"}\n')
        with pytest.raises(ValueError, match=r"h.runs.jsonl is not a history runs file: line 2"):
            History.load(path)

    def test_a_follower_sees_runs_started_and_ended_in_the_runs_file(self, tmp_path):
        path = tmp_path / "h.csv"
        writer = History(path=path)
        follower = History.follow(path)
        writer.start_run("a", {"labels": ["w"]})
        follower.refresh()
        assert follower.runs == ("a",) and follower.metadata("a")["labels"] == ["w"]
        writer.record(1, loss=1.0)
        writer.end_run()
        follower.refresh()
        assert follower.is_finished("a") and follower.last("loss") == 1.0
