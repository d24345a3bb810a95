"""Rule files (``load_rules``, ``load_optimizer``, ``python -m multiopt_lab check``) and checkpoint
metadata are data.

Three proofs:

* static: the modules that read them hold no call that runs code or
  deserialises objects (``eval``, ``exec``, ``pickle``, ``marshal``,
  ``importlib``, ``__import__``, ``yaml``, ``subprocess``, ``os.system``);
* dynamic, with Python's audit hooks: reading hostile files raises no
  ``exec`` event (no code object runs), imports nothing, starts no process
  and opens nothing but the file itself;
* behavioural: code in a rule is a ``RuleFileError`` naming the file and
  group; code in a label or in checkpoint metadata stays an inert string; a
  sentinel that any executed text would trip never fires.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import types
from pathlib import Path

import mlx.core as mx
import mlx.optimizers as optim
import pytest

import multiopt_lab
from multiopt_lab import (
    MultiOptimizer, RuleFileError, load_rules, load_state, save_rules, save_state,
)
from multiopt_lab.__main__ import main

SENTINEL = "_multiopt_lab_rulefile_sentinel"
CODE = f"__import__('{SENTINEL}').fire()"

# -- static ---------------------------------------------------------------------------------------
READERS = ["io/rulefile.py", "io/rulefile_data.py", "cli.py", "io/checkpoint.py",
           "io/checkpoint_read.py", "io/expected_state.py", "io/load_plan.py",
           "io/safetensors_reader.py", "io/checksum.py", "trees/unflatten.py",
           "rules/__init__.py", "rules/rule.py",
           "rules/parser.py", "rules/checks.py", "rules/matching.py", "rules/text.py",
           "rules/nodes.py", "rules/logic.py", "partition/labels.py",
           "optimizer_file/save_load.py", "optimizer_file/as_data.py", "optimizer_file/classes.py",
           "optimizer_file/schedules.py"]
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "execfile", "input", "breakpoint"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "marshal", "shelve", "yaml", "subprocess",
                     "runpy", "code", "codeop", "ctypes"}


def _module_source(relative: str) -> str:
    return (Path(multiopt_lab.__file__).parent / "_src" / relative).read_text(encoding="utf-8")


@pytest.mark.parametrize("relative", READERS)
def test_readers_hold_no_code_running_call(relative):
    tree = ast.parse(_module_source(relative))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, f"{relative}:{node.lineno} calls {node.func.id}"
        if isinstance(node, ast.Attribute) and node.attr in {"system", "popen", "load_module", "exec_module"}:
            raise AssertionError(f"{relative}:{node.lineno} uses .{node.attr}")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if getattr(node, "module", None) else [])
            assert not {n.split(".")[0] for n in names} & FORBIDDEN_MODULES, f"{relative}:{node.lineno}"


def test_only_the_cli_imports_and_only_the_model_named_on_the_command_line():
    # importlib in cli.py serves --model (the user's own code, by design); no reader of
    # rule files or checkpoints imports anything named in the data.
    for relative in READERS:
        uses = "importlib" in _module_source(relative)
        assert uses == (relative == "cli.py"), relative


# -- dynamic: audit hooks -------------------------------------------------------------------------
class Audit:
    """Records audit events while ``active``; the hook cannot be removed, so it stays idle."""

    events: list = []
    active = False

    @classmethod
    def hook(cls, event, args):
        if cls.active:
            cls.events.append((event, args))


sys.addaudithook(Audit.hook)
RUNS_CODE = ("exec", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
             "subprocess.Popen", "ctypes.", "pickle.find_class", "marshal.load", "import",
             "socket.", "urllib.", "os.startfile", "builtins.input", "code.__new__")


def audited(function):
    Audit.events, Audit.active = [], True
    try:
        result = function()
    except (RuleFileError, ValueError) as err:
        result = err
    finally:
        Audit.active = False
    return result, list(Audit.events)


def assert_data_only(events, allowed_files):
    for event, args in events:
        assert not event.startswith(RUNS_CODE), f"{event} {args!r:.200}"
        if event == "open":
            path, mode = args[0], args[1]
            assert mode in (None, "r", "rb") or (isinstance(mode, int) and mode & 3 == 0), (path, mode)
            if isinstance(path, (str, bytes, os.PathLike)):
                assert os.fspath(path) in allowed_files, f"opened {path!r}"


def test_the_audit_sees_code_that_runs(sentinel):
    # The checks below are only as good as the hook: show it catches what they look for.
    _, events = audited(lambda: eval(compile(CODE, "<rule>", "eval")))  # noqa: S307 - the positive control
    with pytest.raises(AssertionError, match="exec"):
        assert_data_only(events, set())
    sentinel.fired.clear()


@pytest.fixture(autouse=True)
def sentinel():
    module = types.ModuleType(SENTINEL)
    module.fired = []
    module.fire = lambda: module.fired.append(True)
    sys.modules[SENTINEL] = module
    yield module
    del sys.modules[SENTINEL]
    assert module.fired == []


HOSTILE_FILES = {
    "code_rule.toml": f"[[group]]\nlabel = 'x'\nrule = \"{CODE}\"\n[[group]]\nlabel = 'rest'\n",
    "attribute_rule.toml": "[[group]]\nlabel = 'x'\nrule = \"path.__class__.__mro__\"\n[[group]]\nlabel = 'rest'\n",
    "format_rule.json": json.dumps({"group": [{"label": "x", "rule": "'{0.__class__}'.format(path) == path"},
                                              {"label": "rest"}]}),
    "code_key.json": json.dumps({"group": [{"label": "rest"}], "__class__": CODE}),
    "python.toml": f"import {SENTINEL}\n{SENTINEL}.fire()\n",
    "python.json": f"{CODE}\n",
    "pickle.json": "cos\nsystem\n(S'echo pwned'\ntR.",
    "yaml_tag.toml": f"!!python/object/apply:{SENTINEL}.fire []\n",
    "deep.json": "[" * 50000 + "]" * 50000,
    "binary.toml": "\udcff\udcfe",
}


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return path


@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
def test_hostile_rule_files_are_refused_as_data(tmp_path, name):
    path = write(tmp_path, name, HOSTILE_FILES[name])
    load_rules(write(tmp_path, "warm.toml", "[[group]]\nlabel = 'all'\n"))  # imports done
    result, events = audited(lambda: load_rules(path))
    assert isinstance(result, RuleFileError), result
    assert str(path) in str(result)
    assert_data_only(events, {str(path)})


def test_code_in_a_label_stays_a_string(tmp_path):
    text = json.dumps({"group": [{"label": CODE, "rule": "ndim == 2"}, {"label": "{0.__class__}"}]})
    path = write(tmp_path, "labels.json", text)
    (labels, rules), events = audited(lambda: load_rules(path))
    assert labels == [CODE, "{0.__class__}"] and rules[0].label == CODE
    assert_data_only(events, {str(path)})


OPTIMIZER_TABLE = "[[group]]\nlabel = 'all'\n[group.optimizer]\n"
HOSTILE_OPTIMIZER_FILES = {
    "class_path.toml": OPTIMIZER_TABLE + f"class = '{SENTINEL}.fire'\n",
    "class_module.toml": OPTIMIZER_TABLE + "class = 'os.system'\nlearning_rate = 'echo pwned'\n",
    "class_dunder.toml": OPTIMIZER_TABLE + "class = '__builtins__'\n",
    "class_leaked_name.toml": OPTIMIZER_TABLE + "class = 'tree_map'\n",
    "argument_code.toml": OPTIMIZER_TABLE + f"class = 'SGD'\nlearning_rate = \"{CODE}\"\n",
    "argument_dunder.toml": OPTIMIZER_TABLE + "class = 'SGD'\nlearning_rate = 0.1\n__class__ = 'x'\n",
    "schedule_path.toml": OPTIMIZER_TABLE + f"class = 'SGD'\nlearning_rate = {{ schedule = '{SENTINEL}.fire' }}\n",
    "schedule_module.json": json.dumps({"group": [{"label": "all", "optimizer": {
        "class": "SGD", "learning_rate": {"schedule": "math", "init": 1}}}]}),
    "schedule_code.json": json.dumps({"group": [{"label": "all", "optimizer": {
        "class": "SGD", "learning_rate": {"schedule": "cosine_decay", "init": CODE, "decay_steps": 3}}}]}),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_OPTIMIZER_FILES))
def test_hostile_optimizer_tables_are_refused_as_data(tmp_path, name):
    import mlx.nn as nn
    from multiopt_lab import load_optimizer

    path = write(tmp_path, name, HOSTILE_OPTIMIZER_FILES[name])
    warm = write(tmp_path, "warm.toml", OPTIMIZER_TABLE + "class = 'SGD'\nlearning_rate = 0.1\n")
    model = nn.Linear(2, 2)
    load_optimizer(warm, model)  # imports done
    result, events = audited(lambda: load_optimizer(path, model))
    assert isinstance(result, RuleFileError), result
    assert str(result).startswith(f"{path}: group 'all'"), result
    assert_data_only(events, {str(path)})


FACTORY = '''
import mlx.core as mx
def make():
    return {"w": mx.zeros((3, 3)), "b": mx.zeros((3,))}
'''


@pytest.mark.parametrize("name", ["code_rule.toml", "python.toml", "deep.json", "binary.toml"])
def test_cli_check_reports_hostile_rule_files_as_usage_errors(tmp_path, monkeypatch, capsys, name):
    module = f"h8_factory_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{module}.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__(module)  # the model is the user's code by design: import it outside the audit
    path = write(tmp_path, name, HOSTILE_FILES[name])
    status, events = audited(lambda: main(["check", str(path), "--model", f"{module}:make"]))
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("multiopt-lab: error:") and str(path) in err
    assert_data_only(events, {str(path)})


def test_cli_check_of_a_good_file_reads_only_it(tmp_path, monkeypatch, capsys):
    module = f"h8_factory_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{module}.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__(module)
    save_rules(tmp_path / "good.toml", ["matrices", "rest"], ["ndim == 2"])
    main(["check", str(tmp_path / "good.toml"), "--model", f"{module}:make"])  # warm
    status, events = audited(lambda: main(["check", str(tmp_path / "good.toml"), "--model", f"{module}:make"]))
    assert status == 0, capsys.readouterr()
    assert_data_only(events, {str(tmp_path / "good.toml")})
    assert any(e == "open" and str(a[0]) == str(tmp_path / "good.toml") for e, a in events), \
        "the audit hook saw nothing: it proves nothing"


# -- checkpoint metadata ------------------------------------------------------------------------
def _optimizer():
    return MultiOptimizer([optim.SGD(0.1, momentum=0.9), optim.Adam(0.01)], ["ndim == 2"])


@pytest.mark.parametrize("key,value", [
    ("labels", json.dumps([CODE, "{0.__class__}"])),
    ("rules", json.dumps([CODE])),
    ("optimizers", json.dumps([CODE, "os.system"])),
    ("paths", json.dumps([[CODE], ["b"]])),
    ("labels", CODE),
    ("rules", "cos\nsystem\n(S'echo pwned'\ntR."),
])
def test_checkpoint_metadata_is_never_run(tmp_path, key, value):
    params = {"w": mx.ones((2, 2)), "b": mx.ones((2,))}
    opt = _optimizer()
    opt.apply_gradients(params, params)
    file = tmp_path / "opt.safetensors"
    save_state(file, opt)
    arrays, metadata = mx.load(str(file), return_metadata=True)
    metadata[key] = value
    del metadata["crc32"]  # as a hand-edited or foreign file would be
    mx.save_safetensors(str(file), arrays, metadata=metadata)
    audited(lambda: load_state(file, _optimizer(), parameters=params))  # warm: imports done
    result, events = audited(lambda: load_state(file, _optimizer(), parameters=params))
    assert_data_only(events, {str(file)})
    if key == "labels" and value.startswith("["):
        assert result.labels == (CODE, "{0.__class__}")  # inert strings
    elif key == "labels":
        assert isinstance(result, ValueError) and "'labels' is not valid JSON" in str(result)
    elif key == "paths":
        assert isinstance(result, ValueError) and CODE in str(result)  # named, not run
