# Tests the private modules' own units: multiopt_lab._src.io.atomic,
#   multiopt_lab._src.io.safetensors_writer.
"""Files written whole: one atomic writer (io/atomic.py) behind every file the package saves.

For each writer (optimizer state, distributed checkpoint, rule file, History
as CSV and Parquet): a failure leaves the previous file loadable and no
debris; a planted symlink or a stale temporary file is never written
through; concurrent saves do not collide; permissions follow the umask like
any new file; ``..`` after a symlinked folder is resolved by the OS.
"""

from __future__ import annotations

import os
import stat
import threading

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest

import multiopt_lab._src.io.atomic as atomic
from multiopt_lab import (
    History, MultiOptimizer, load_checkpoint, load_optimizer, load_rules, load_state,
    save_checkpoint, save_optimizer, save_rules, save_state,
)
from multiopt_lab._src.io.atomic import write_atomically, write_text_atomically
from multiopt_lab._src.io.safetensors_writer import SafetensorsArrays


def optimizer():
    opt = MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)], ["ndim == 2"])
    params = {"w": mx.ones((3, 2)), "b": mx.ones((2,))}
    opt.apply_gradients({"w": mx.ones((3, 2)), "b": mx.ones((2,))}, params)
    mx.eval(opt.state)
    return opt


def history(steps=3):
    h = History()
    for step in range(1, steps + 1):
        h.record(step, loss=1.0 / step)
    return h


def model_and_optimizer(seed=0):
    mx.random.seed(seed)
    model = nn.Linear(3, 2)
    opt = MultiOptimizer([optim.Adam(1e-2), optim.SGD(0.1, momentum=0.9)], ["ndim == 2"])
    grads = nn.value_and_grad(model, lambda m, x: (m(x) ** 2).mean())(model, mx.ones((4, 3)))[1]
    opt.update(model, grads)
    mx.eval(model.parameters(), opt.state)
    return model, opt


#: name -> (file name, write it, read it back): every file the package writes whole.
WRITERS = {
    "optimizer state": ("opt.safetensors", lambda p: save_state(p, optimizer()),
                        lambda p: load_state(p, MultiOptimizer([optim.SGD(0.1, momentum=0.9),
                                                                optim.Adam(0.01)], ["ndim == 2"]))),
    "rule file": ("rules.toml", lambda p: save_rules(p, ["a", "b"], ["ndim == 2"]), load_rules),
    "optimizer file": ("optimizer.json", lambda p: save_optimizer(p, optimizer()),
                       lambda p: load_optimizer(p, nn.Linear(3, 2))),
    "history csv": ("h.csv", lambda p: history().save(p), History.load),
    "history parquet": ("h.parquet", lambda p: history().save(p), History.load),
}


def _needs(name):
    if "parquet" in name:
        pytest.importorskip("pyarrow")


@pytest.mark.parametrize("name", WRITERS)
def test_a_failed_write_leaves_the_previous_file_and_no_debris(tmp_path, monkeypatch, name):
    _needs(name)
    file_name, write, read = WRITERS[name]
    target = tmp_path / file_name
    write(target)
    before = target.read_bytes()
    written = sorted(p.name for p in tmp_path.iterdir())  # a History's CSV has its runs file beside it

    def fail_half_way(handle):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", lambda fd: fail_half_way(fd))
    with pytest.raises(OSError, match="No space left"):
        write(target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == written, "debris left behind"
    read(target)


@pytest.mark.parametrize("name", WRITERS)
def test_a_planted_symlink_at_any_temporary_name_is_not_followed(tmp_path, name):
    _needs(name)
    file_name, write, _ = WRITERS[name]
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "folder"
    folder.mkdir()
    victim = outside / "victim"
    victim.write_text("precious")
    # The names the old writers used: predictable, so they could be planted.
    for planted in (f"{file_name}.tmp-{os.getpid()}", f".{file_name}.tmp", f"{file_name}.tmp"):
        os.symlink(victim, folder / planted)
    write(folder / file_name)
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("name", WRITERS)
def test_a_stale_temporary_file_is_not_appended_to(tmp_path, name):
    _needs(name)
    file_name, write, read = WRITERS[name]
    stale = tmp_path / f"{file_name}.tmp-{os.getpid()}"
    stale.write_text("left by a killed process\n")
    write(tmp_path / file_name)
    read(tmp_path / file_name)
    assert b"killed process" not in (tmp_path / file_name).read_bytes()


def test_thirty_threads_saving_one_history_do_not_collide(tmp_path):
    h = history(50)
    target = tmp_path / "h.csv"
    errors = []

    def save():
        try:
            h.save(target)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=save) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert History.load(target).frame.equals(h.frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv", "h.runs.jsonl"]


@pytest.fixture
def umask():
    def set_umask(value):
        previous = os.umask(value)
        restore.append(previous)

    restore = []
    yield set_umask
    for value in reversed(restore):
        os.umask(value)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
@pytest.mark.parametrize("name", WRITERS)
def test_new_files_get_the_permissions_the_umask_gives(tmp_path, umask, name, mask):
    _needs(name)
    file_name, write, _ = WRITERS[name]
    umask(mask)
    write(tmp_path / file_name)
    assert stat.S_IMODE(os.stat(tmp_path / file_name).st_mode) == 0o666 & ~mask


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "rules.toml"
    save_rules(target, ["a", "b"], ["ndim == 2"])
    os.chmod(target, 0o640)
    save_rules(target, ["a", "b"], ["ndim == 1"])
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_checkpoint_files_follow_the_umask(tmp_path, umask):
    umask(0o022)
    model, opt = model_and_optimizer()
    folder = save_checkpoint(tmp_path / "ck", model, opt, step=1)
    for file in folder.iterdir():
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o644, file.name


def _other_file_system(tmp_path):
    shm = "/dev/shm"
    if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another file system than the temporary folder")
    import tempfile
    return tempfile.mkdtemp(dir=shm)


@pytest.mark.parametrize("name", WRITERS)
def test_dot_dot_after_a_symlinked_folder_is_resolved_by_the_os(tmp_path, name):
    _needs(name)
    file_name, write, read = WRITERS[name]
    elsewhere = _other_file_system(tmp_path)
    os.makedirs(os.path.join(elsewhere, "sub"))
    os.symlink(os.path.join(elsewhere, "sub"), tmp_path / "link")
    # The OS reads link/.. as the parent of link's target: a folder on the other file system.
    path = os.path.join(tmp_path, "link", "..", file_name)
    write(path)
    read(path)
    assert os.path.exists(os.path.join(elsewhere, file_name))
    assert not os.path.exists(tmp_path / file_name)


def test_the_writer_refuses_a_folder_and_reports_a_missing_one(tmp_path):
    with pytest.raises(IsADirectoryError, match="expected a file name"):
        write_text_atomically(tmp_path, "x")
    with pytest.raises(FileNotFoundError):
        write_text_atomically(tmp_path / "missing" / "x.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_inside_the_writer_leaves_nothing(tmp_path):
    target = tmp_path / "x.bin"

    def interrupted(file):
        file.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, interrupted)
    assert list(tmp_path.iterdir()) == []


def test_a_name_taken_by_chance_is_drawn_again(tmp_path, monkeypatch):
    names = iter([".x.taken.tmp", ".x.free.tmp"])
    (tmp_path / ".x.taken.tmp").write_text("someone else's")
    monkeypatch.setattr(atomic, "temporary_name", lambda path: str(tmp_path / next(names)))
    write_text_atomically(tmp_path / "x", "mine")
    assert (tmp_path / "x").read_text() == "mine"
    assert (tmp_path / ".x.taken.tmp").read_text() == "someone else's"


class TestDistributedCheckpoint:
    def test_a_failed_save_keeps_the_previous_checkpoint_loadable(self, tmp_path, monkeypatch):
        model, opt = model_and_optimizer()
        folder = save_checkpoint(tmp_path / "ck", model, opt, step=1)
        files_before = sorted(p.name for p in folder.iterdir())
        newer_model, newer_opt = model_and_optimizer(seed=1)
        real_save = mx.save_safetensors
        written = []

        def model_weights(file, arrays, metadata=None):
            written.append(file)
            return real_save(file, arrays, metadata=metadata)

        def disk_full(arrays, file, metadata=None):
            assert written, "the model is written first"
            file.write(b"\x00" * 100)  # the optimizer state does not fit
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(mx, "save_safetensors", model_weights)
        monkeypatch.setattr(SafetensorsArrays, "write", disk_full)
        with pytest.raises(OSError, match="No space left"):
            save_checkpoint(folder, newer_model, newer_opt, step=2)
        monkeypatch.undo()
        assert sorted(p.name for p in folder.iterdir()) == files_before, "debris left behind"
        fresh_model, fresh_opt = model_and_optimizer(seed=5)
        assert load_checkpoint(folder, fresh_model, fresh_opt) == 1
        assert mx.array_equal(fresh_model.weight, model.weight)

    def test_a_failure_writing_the_step_keeps_the_previous_checkpoint(self, tmp_path, monkeypatch):
        model, opt = model_and_optimizer()
        folder = save_checkpoint(tmp_path / "ck", model, opt, step=1)
        files_before = sorted(p.name for p in folder.iterdir())
        real_replace = os.replace

        def fail_on_the_info_file(source, destination):
            if str(destination).endswith("checkpoint.json"):
                raise OSError(28, "No space left on device")
            return real_replace(source, destination)

        monkeypatch.setattr(os, "replace", fail_on_the_info_file)
        with pytest.raises(OSError):
            save_checkpoint(folder, *model_and_optimizer(seed=1), step=2)
        monkeypatch.undo()
        assert sorted(p.name for p in folder.iterdir()) == files_before
        assert load_checkpoint(folder, *model_and_optimizer(seed=5)) == 1

    def test_saving_again_leaves_one_checkpoint(self, tmp_path):
        model, opt = model_and_optimizer()
        folder = save_checkpoint(tmp_path / "ck", model, opt, step=1)
        first = sorted(p.name for p in folder.iterdir())
        save_checkpoint(folder, model, opt, step=2)
        assert len(list(folder.iterdir())) == len(first)
        assert load_checkpoint(folder, *model_and_optimizer(seed=5)) == 2
