# Tests the private module multiopt_lab._src.rules.cache's own unit (clear_selection_cache,
#   so that the measured keystroke types a rule no earlier test has cached).
"""docs/architecture.md says which of the package's modules one update and one keystroke go through.

Issue 28: the doc said an eager update crosses four files in the steady state
(it crossed ten) and a keystroke about ten (it crossed about 35). Here a
profiler counts them: every Python function that runs, wherever it was called
from (MLX, ipywidgets' observers, a lambda), is charged to the file its code
lives in, and the files of the package make the set. The doc lists each path's
modules in a fenced block whose first line is ``<name>: <count> modules``,
then one module a line (its path under ``multiopt_lab/_src/``, or from
``multiopt_lab/`` for a public one), then what it does there.

The threading note is checked too: the debounced recompute runs on the thread
whose event loop received the keystroke (the kernel's main thread when idle,
the subshell's thread while a cell trains).
"""

from __future__ import annotations

import asyncio
import gc
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest

import multiopt_lab
from multiopt_lab import MultiOptimizer, RuleEditorWidget
from multiopt_lab._src.rules.cache import clear_selection_cache
from multiopt_lab.examples import MLP

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
PACKAGE = Path(multiopt_lab.__file__).resolve().parent
PRIVATE = PACKAGE / "_src"


def module_of(filename: str) -> str | None:
    """The doc's name of the package file ``filename``, or None outside the package."""
    if not filename or filename.startswith("<"):
        return None
    path = Path(filename).resolve()
    if path.is_relative_to(PRIVATE):
        return path.relative_to(PRIVATE).as_posix()
    if path.is_relative_to(PACKAGE):
        return path.relative_to(PACKAGE.parent).as_posix()
    return None


def modules_crossed(action: Callable[[], None]) -> set[str]:
    """The package's modules whose Python code runs during ``action()``, on any thread."""
    names: dict[str, str | None] = {}
    crossed: set[str] = set()

    def profile(frame, event, arg):
        # "call" is a Python frame starting (called from Python or from C alike);
        # c_call events are C functions: never ours.
        if event == "call":
            filename = frame.f_code.co_filename
            if filename not in names:
                names[filename] = module_of(filename)
            module = names[filename]
            if module is not None:
                crossed.add(module)

    # Garbage of earlier tests is collected now, not charged to the path.
    gc.collect()
    gc.disable()
    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        gc.enable()
    return crossed


def documented(name: str) -> tuple[int, set[str]]:
    """The count and the modules the doc's block ``name: N modules`` states."""
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```text\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    for block in blocks:
        header, *lines = block.splitlines()
        found = re.fullmatch(r"(.+): (\d+) modules", header.strip())
        if found and found.group(1) == name:
            return int(found.group(2)), {line.split()[0] for line in lines if line.strip()}
    raise AssertionError(f"docs/architecture.md has no block starting with '{name}: N modules'")


def check_against_doc(name: str, actual: set[str]) -> None:
    count, listed = documented(name)
    assert count == len(listed), (
        f"docs/architecture.md, block '{name}': the header says {count} modules, the list has "
        f"{len(listed)}; make them agree")
    assert actual == listed, (
        f"docs/architecture.md, block '{name}', is out of date: update it to the modules the "
        f"path goes through now.\n  documented ({len(listed)}): {sorted(listed)}\n"
        f"  actual ({len(actual)}): {sorted(actual)}\n  to add: {sorted(actual - listed)}\n"
        f"  to remove: {sorted(listed - actual)}")


# -- one eager update ------------------------------------------------------------------------

def warm_optimizer(**options):
    """MLP(4, [8], 2) under Muon (matrices) and AdamW (the rest), after three full steps."""
    mx.random.seed(0)
    model = MLP(4, [8], 2)
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ['ndim == 2 and not glob("head.*")'],
                               labels=["muon", "adamw"], **options)
    x, y = mx.random.normal((8, 4)), mx.zeros((8,), dtype=mx.int32)
    loss_and_grad = nn.value_and_grad(model, lambda m: nn.losses.cross_entropy(m(x), y).mean())
    for _ in range(3):
        _, gradients = loss_and_grad(model)
        optimizer.update(model, gradients)
        mx.eval(model.parameters(), optimizer.state)
    _, gradients = loss_and_grad(model)
    mx.eval(gradients)
    return model, optimizer, gradients


def test_one_eager_update_goes_through_the_modules_the_doc_lists():
    model, optimizer, gradients = warm_optimizer()  # metrics off, per_parameter off: the defaults
    crossed = modules_crossed(lambda: optimizer.update(model, gradients))
    check_against_doc("one eager update", crossed)


def test_one_recorded_update_goes_through_the_modules_the_doc_lists():
    model, optimizer, gradients = warm_optimizer(metrics_every=1)
    crossed = modules_crossed(lambda: optimizer.update(model, gradients))
    assert optimizer.metrics_step == 4
    check_against_doc("one recorded update", crossed)


# -- one keystroke in the editor -------------------------------------------------------------

@pytest.fixture
def editor(recorded_comm):
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
    # debounce_seconds=0: the debouncer runs the recompute at once, in the keystroke's
    # own call, as its timer would once typing pauses (the same modules either way).
    made = RuleEditorWidget(MLP(4, [8], 2), optimizer, debounce_seconds=0)
    made.inputs["muon"].value = "ndim == 1"  # the warm-up keystroke
    yield made
    made.close()


def test_one_keystroke_goes_through_the_modules_the_doc_lists(editor):
    clear_selection_cache()  # a rule as typed is new: its selection is computed

    def keystroke():
        editor.inputs["muon"].value = 'ndim == 2 and not glob("head.*")'

    crossed = modules_crossed(keystroke)
    assert "muon -&gt; adamw" in editor.preview.value  # head.weight would move
    assert 'data-path="head.weight" data-group="adamw"' in editor.tree.view.html
    check_against_doc("one keystroke", crossed)


# -- the threading note ----------------------------------------------------------------------

def recompute_thread(editor, text: str, on_thread: Callable[[Callable[[], None]], None]) -> str:
    """The name of the thread the debounced recompute ran on, typing ``text`` from ``on_thread``."""
    ran_on: list[str] = []
    editor.preview.observe(lambda change: ran_on.append(threading.current_thread().name), "value")

    async def type_and_wait():
        editor.inputs["muon"].value = text
        assert not ran_on  # not yet: the quiet time runs first
        while not ran_on:
            await asyncio.sleep(0.005)

    on_thread(lambda: asyncio.run(asyncio.wait_for(type_and_wait(), 10)))
    return ran_on[0]


def on_other_thread(run: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def target():
        try:
            run()
        except BaseException as error:  # reported on the test's thread
            errors.append(error)

    worker = threading.Thread(target=target, name="subshell-stand-in")
    worker.start()
    worker.join(20)
    assert not worker.is_alive() and not errors, errors


def test_the_debounced_recompute_runs_on_the_thread_whose_loop_got_the_keystroke(recorded_comm):
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
    # A quiet time: the recompute waits on a timer of the loop that handled the keystroke.
    editor = RuleEditorWidget(MLP(4, [8], 2), optimizer, debounce_seconds=0.01)
    # Idle kernel: the comm message is handled on the main thread, on its loop.
    assert recompute_thread(editor, "ndim == 1", lambda run: run()) == threading.current_thread().name
    # A cell trains: the message is routed to a subshell, a thread with its own loop.
    assert recompute_thread(editor, "ndim >= 1", on_other_thread) == "subshell-stand-in"
    editor.close()


def test_the_largest_folder_is_the_one_the_doc_names():
    found = re.search(r"The largest folder is `(\w+)/`, with (\d+) modules besides its `__init__.py`",
                      DOC.read_text(encoding="utf-8"))
    assert found, "docs/architecture.md no longer says which folder is the largest"
    sizes = {folder.name: sum(1 for f in folder.glob("*.py") if f.name != "__init__.py")
             for folder in PRIVATE.iterdir() if (folder / "__init__.py").is_file()}
    largest = max(sizes.values())
    assert (found.group(1), int(found.group(2))) in [(name, n) for name, n in sizes.items() if n == largest], (
        f"docs/architecture.md: update the largest folder's line; the folders under _src/ hold "
        f"{dict(sorted(sizes.items(), key=lambda item: -item[1])[:3])} modules")
