# Tests the private modules' own units: multiopt_lab._src.io.history_data,
#   multiopt_lab._src.io.history_files, multiopt_lab._src.io.history_follow,
#   multiopt_lab._src.io.history_stream.
"""A History's files on plain data, without a History: io/history_*.py.

These test private modules' own units (multiopt_lab._src.io.history_files,
history_stream, history_follow): the formats take rows, run metadata and frames
and give back events, so that io/ never needs training/. What a user sees goes
through History in test_history.py and test_history_parameters.py.
"""

from __future__ import annotations

import importlib.util
import threading

import pandas as pd
import pytest

from multiopt_lab._src.io.history_data import HistoryData, count_rows
from multiopt_lab._src.io.history_files import read_history, save_history
from multiopt_lab._src.io.history_follow import HistoryFollower
from multiopt_lab._src.io.history_stream import HistoryStream

COLUMNS = {"run": ["a", "a", "b"], "step": [1, 2, 1], "group": ["-", "w", "-"],
           "metric": ["loss", "update_norm", "loss"], "value": [2.0, 0.5, 3.0]}
RUNS = {"a": {"labels": ["w"], "lr": 0.1}, "b": {}}
# Plain strings (not categoricals), as a caller without a History would hold them.
PARAMETERS = pd.DataFrame({"run": ["a", "a"], "step": [2, 2], "path": ["w.weight", "w.bias"],
                           "group": ["w", "w"], "metric": ["update_norm", "update_norm"],
                           "value": [0.25, 0.125]})
SUFFIXES = ["csv"] + (["parquet"] if importlib.util.find_spec("pyarrow") else [])


def _collect(events):
    rows = [payload for kind, payload in events if kind == "row"]
    runs = {name: metadata for kind, (name, metadata) in
            ((k, p) for k, p in events if k == "run")}
    ended = {payload for kind, payload in events if kind == "end"}
    frames = [payload for kind, payload in events if kind == "parameters"]
    return rows, runs, ended, frames


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_saved_plain_data_reads_back_as_the_same_events(tmp_path, suffix):
    path = tmp_path / f"h.{suffix}"
    save_history(path, HistoryData(COLUMNS, RUNS, {"a"}, PARAMETERS))
    events = read_history(path)
    rows, runs, ended, frames = _collect(events)
    assert rows == list(zip(*COLUMNS.values()))
    assert runs == RUNS and ended == {"a"}
    assert len(frames) == 1 and count_rows(events) == 3 + 2
    got = frames[0].astype({name: str for name in ("run", "path", "group", "metric")})
    pd.testing.assert_frame_equal(got, PARAMETERS)


def test_a_stream_written_first_with_what_is_recorded_reads_as_the_saved_file(tmp_path):
    streamed, saved = tmp_path / "s.csv", tmp_path / "v.csv"
    stream = HistoryStream(streamed, HistoryData(COLUMNS, RUNS, {"a"}, PARAMETERS))
    stream.write_rows([("b", 2, "-", "loss", 2.5)])
    stream.write_parameter_block("b", 2, ("w.weight",), ("w",), ("update_norm",), [[1.0]])
    stream.write_end("b")
    stream.close()
    more = {name: values + [extra] for (name, values), extra in
            zip(COLUMNS.items(), ["b", 2, "-", "loss", 2.5])}
    parameters = pd.concat([PARAMETERS, pd.DataFrame(
        {"run": ["b"], "step": [2], "path": ["w.weight"], "group": ["w"],
         "metric": ["update_norm"], "value": [1.0]})], ignore_index=True)
    save_history(saved, HistoryData(more, RUNS, {"a", "b"}, parameters))
    for suffix in (".csv", ".parameters.csv", ".runs.jsonl"):
        assert (tmp_path / f"s{suffix}").read_text() == (tmp_path / f"v{suffix}").read_text()
    assert _collect(read_history(streamed))[2] == {"a", "b"}


def test_a_stream_refuses_a_file_that_holds_data_and_leaves_it_as_it_was(tmp_path):
    path = tmp_path / "h.csv"
    save_history(path, HistoryData(COLUMNS, RUNS))
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="already holds data"):
        HistoryStream(path)
    assert path.read_bytes() == before and (tmp_path / "h.runs.jsonl").exists()


def test_the_follower_hands_events_to_its_reader_and_says_when_a_file_was_replaced(tmp_path):
    path = tmp_path / "h.csv"
    follower = HistoryFollower(path)
    applied = []
    stream = HistoryStream(path)
    stream.write_run("a", {"lr": 0.1})
    stream.write_rows([("a", 1, "-", "loss", 2.0)])
    update = follower.refresh(lambda events, restarted: applied.append((events, restarted)))
    assert update.rows == 1 and not update.restarted and applied == [(update.events, False)]
    stream.close()
    save_history(path, HistoryData({name: [] for name in COLUMNS}, {"new": {}}))
    update = follower.refresh(lambda events, restarted: applied.append((events, restarted)))
    assert update.restarted and update.events == [("run", ("new", {}))]
    assert applied[-1] == (update.events, True)


def test_two_refreshes_at_once_apply_in_the_order_they_read(tmp_path):
    # A watch thread and a caller may refresh together: the second waits until the first
    # has applied what it read, so rows never arrive out of order.
    path = tmp_path / "h.csv"
    follower, stream = HistoryFollower(path), HistoryStream(path)
    stream.write_rows([("a", 1, "-", "loss", 2.0)])
    order, first_applying, release, second_applied = [], threading.Event(), threading.Event(), \
        threading.Event()

    def first(events, restarted):
        order.append(("first", events))
        first_applying.set()
        release.wait(10)
        order.append(("first done", []))

    def second(events, restarted):
        order.append(("second", events))
        second_applied.set()

    thread = threading.Thread(target=follower.refresh, args=(first,))
    thread.start()
    assert first_applying.wait(10)
    stream.write_rows([("a", 2, "-", "loss", 1.0)])
    other = threading.Thread(target=follower.refresh, args=(second,))
    other.start()
    assert not second_applied.wait(0.3), "a second refresh applied while the first was applying"
    release.set()
    thread.join(10), other.join(10)
    stream.close()
    assert [(name, [p[1] for _, p in events]) for name, events in order] == \
        [("first", [1]), ("first done", []), ("second", [2])]
