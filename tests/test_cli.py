# Tests the private modules' own units: multiopt_lab._src.cli, multiopt_lab._src.device.
"""The command line: `python -m multiopt_lab check RULES --model module:factory`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import mlx.core as mx
import pytest

from multiopt_lab import save_rules
from multiopt_lab.__main__ import main
from multiopt_lab._src.device import describe_device

FACTORY = textwrap.dedent("""
    import mlx.core as mx
    import mlx.nn as nn

    def make_model():
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def make_tree():
        return {"w": mx.zeros((3, 3)), "b": mx.zeros((3,))}

    def broken():
        raise RuntimeError("no weights here")

    def not_a_model():
        return 42

    MODEL = make_model()

    def make_moe():
        from multiopt_lab.examples import TinyMoE
        mx.random.seed(0)
        return TinyMoE(16, dims=8, layers=1, experts=2)

    def make_long():
        # Enough parameters that `--tree` prints more than a pipe holds (64 KiB).
        return nn.Sequential(*[nn.Linear(2, 2) for _ in range(1500)])
""")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A tmp dir with a factory module (unique name per test) and rule files."""
    name = f"factory_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(FACTORY)
    save_rules(tmp_path / "clean.toml", ["muon", "adamw"], ["ndim == 2"])
    save_rules(tmp_path / "dead.toml", ["conv", "muon", "adamw"], ["ndim == 4", "ndim == 2"])
    save_rules(tmp_path / "overlap.json", ["head", "muon", "adamw"], ['glob("layers.2.*")', "ndim == 2"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() puts the cwd on sys.path
    return name


def run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "multiopt_lab", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


class TestSubprocess:
    def test_clean_exits_zero_and_prints_summary(self, project, tmp_path):
        done = run("check", "clean.toml", "--model", f"{project}:make_model", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout == textwrap.dedent(f"""\
            rules: clean.toml (2 groups)
            model: {project}:make_model (4 parameters, 58 values)
            device: {describe_device()}, mlx {mx.__version__}

            muon   2 parameters  48 values   82.8%  ndim == 2
            adamw  2 parameters  10 values   17.2%  (fallback)

            diagnostics: nothing found (no dead or shadowed rule, near miss, overlap, broken contract)
              the fallback 'adamw' took 2 parameters no rule matched:
                layers.0.bias, layers.2.bias
              (no optimizers given: their contracts were not checked)

            check passed (allow_fallback=True, allow_overlap=True, allow_near_misses=True, allow_warnings=True, allow_notes=True)
            """)

    def test_failing_check_exits_one(self, project, tmp_path):
        done = run("check", "clean.toml", "--model", f"{project}:make_model", "--no-allow-fallback", cwd=tmp_path)
        assert done.returncode == 1
        assert "check failed (allow_fallback=False, allow_overlap=True" in done.stdout
        assert "  - note (allow_fallback=False): the fallback 'adamw' took 2 parameters no rule matched" in done.stdout

    def test_piped_into_a_reader_that_stops_early_ends_quietly(self, project, tmp_path):
        # `check ... | head`: no BrokenPipeError traceback, and check's own exit status.
        for extra, status in (([], 0), (["--no-allow-fallback"], 1)):
            check = subprocess.Popen([sys.executable, "-m", "multiopt_lab", "check", "clean.toml", "--model",
                                      f"{project}:make_long", "--tree", *extra], cwd=tmp_path,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            head = subprocess.Popen(["head", "-n", "2"], stdin=check.stdout, stdout=subprocess.PIPE)
            check.stdout.close()  # only head reads it now
            first_lines = head.communicate(timeout=60)[0].decode()
            stderr = check.communicate(timeout=60)[1].decode()
            assert first_lines.startswith("rules: clean.toml (2 groups)\nmodel: ")
            assert check.returncode == status, stderr
            assert stderr == ""

    def test_bad_import_exits_two(self, project, tmp_path):
        done = run("check", "clean.toml", "--model", "no_such_module:make", cwd=tmp_path)
        assert done.returncode == 2
        assert "multiopt-lab: error: cannot import 'no_such_module': ModuleNotFoundError" in done.stderr
        assert done.stdout == ""

    def test_entry_point_module_exposes_main(self):
        from multiopt_lab.__main__ import main as entry
        assert entry is main


class TestInProcess:
    def test_dead_rule_fails(self, project, capsys):
        assert main(["check", "dead.toml", "--model", f"{project}:make_model"]) == 1
        out = capsys.readouterr().out
        assert "diagnostics: 1 error\n  error: rule 'conv' (ndim == 4) matches no parameter\n" in out
        assert "  - error: rule 'conv' (ndim == 4) matches no parameter" in out

    def test_a_dead_rule_naming_a_class_that_holds_no_parameter_says_which_do(self, project, tmp_path, capsys):
        # TinyMoE's SwitchMLP holds its SwitchLinear stacks, and no parameter of its own.
        save_rules(tmp_path / "container.toml", ["experts", "rest"], ['module == "SwitchMLP"'])
        assert main(["check", "container.toml", "--model", f"{project}:make_moe"]) == 1
        out = " ".join(capsys.readouterr().out.split())
        assert "no parameter sits directly in a 'SwitchMLP'" in out
        assert "the classes below it that hold parameters are SwitchLinear" in out
        assert 'write `module == "SwitchLinear"`, or `within("SwitchMLP")`' in out

    def test_overlap_only_fails_when_disallowed(self, project, capsys):
        spec = f"{project}:make_model"
        assert main(["check", "overlap.json", "--model", spec]) == 0
        assert main(["check", "overlap.json", "--model", spec, "--no-allow-overlap"]) == 1
        out = capsys.readouterr().out
        assert "  - note (allow_overlap=False): 1 parameter that 'head' took is also matched" in out
        assert "        layers.2.weight\n" in out

    def test_notes_and_warnings_fail_on_request(self, project, capsys):
        spec = f"{project}:make_moe"
        assert main(["check", "overlap.json", "--model", f"{project}:make_model", "--no-allow-notes"]) == 1
        assert main(["check", "clean.toml", "--model", spec, "--no-allow-warnings"]) == 1
        assert "  - warning (allow_warnings=False): the fallback 'adamw' took 2 parameters" in capsys.readouterr().out

    def test_near_misses_listed_and_failing_on_request(self, project, capsys):
        spec = f"{project}:make_moe"
        assert main(["check", "clean.toml", "--model", spec]) == 0
        out = capsys.readouterr().out
        assert "diagnostics: 1 warning\n  warning: the fallback 'adamw' took 2 parameters that look like" in out
        assert "      layers.0.moe.experts.up.weight, layers.0.moe.experts.down.weight\n" in out
        assert main(["check", "clean.toml", "--model", spec, "--no-allow-near-misses"]) == 1
        assert "  - warning (allow_near_misses=False): the fallback 'adamw' took 2 parameters" \
            in capsys.readouterr().out

    def test_module_rules_need_a_model_not_a_dict(self, project, tmp_path, capsys):
        save_rules(tmp_path / "modules.toml", ["linear", "rest"], ['module == "Linear"'])
        assert main(["check", "modules.toml", "--model", f"{project}:make_model"]) == 0
        assert main(["check", "modules.toml", "--model", f"{project}:make_tree"]) == 2
        assert "pass the model" in capsys.readouterr().err

    @pytest.mark.parametrize("attribute", ["make_tree", "MODEL"])
    def test_parameter_dicts_and_module_instances(self, project, attribute, capsys):
        assert main(["check", "clean.toml", "--model", f"{project}:{attribute}"]) == 0

    def test_tree_flag_prints_every_parameter(self, project, capsys):
        main(["check", "clean.toml", "--model", f"{project}:make_model", "--tree"])
        assert "\nlayers.0\n  weight   [8, 4]  float32" in capsys.readouterr().out

    @pytest.mark.parametrize("args, message", [
        (["check", "clean.toml", "--model", "nocolon"], "--model expects MODULE:FACTORY"),
        (["check", "clean.toml", "--model", "{p}:missing"], "has no attribute 'missing'"),
        (["check", "clean.toml", "--model", "{p}:broken"], "calling {p}:broken failed: RuntimeError: no weights here"),
        (["check", "clean.toml", "--model", "{p}:not_a_model"], "gave a int; expected an nn.Module"),
        (["check", "absent.toml", "--model", "{p}:make_model"], "cannot read rule file absent.toml"),
        (["check", "rules.yaml", "--model", "{p}:make_model"], "expected a .toml or .json file"),
    ])
    def test_usage_errors_exit_two(self, project, capsys, args, message):
        args = [a.format(p=project) for a in args]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("multiopt-lab: error: ") and message.format(p=project) in err

    def test_invalid_rule_in_file_exits_two_with_caret(self, project, tmp_path, capsys):
        (tmp_path / "bad.toml").write_text("[[group]]\nlabel = 'a'\nrule = 'ndim == 2 and glob(*x*)'\n"
                                           "[[group]]\nlabel = 'b'\n")
        assert main(["check", "bad.toml", "--model", f"{project}:make_model"]) == 2
        err = capsys.readouterr().err
        assert "expected a string" in err and "  ndim == 2 and glob(*x*)\n" in err

    def test_every_invalid_rule_of_a_file_in_one_run(self, project, tmp_path, capsys):
        (tmp_path / "bad.toml").write_text(
            "[[group]]\nlabel = 'a'\nrule = 'ndim == 2 and glob(*x*)'\n"
            "[[group]]\nlabel = 'fine'\nrule = 'ndim == 1'\n"
            "[[group]]\nlabel = 'b'\nrule = 'ndim >'\n"
            "[[group]]\nlabel = 'c'\nrule = 'shape[0] = 2'\n"
            "[[group]]\nlabel = 'rest'\n")
        assert main(["check", "bad.toml", "--model", f"{project}:make_model"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("multiopt-lab: error: bad.toml: 3 rules are invalid:\n")
        for label, text in (("a", "ndim == 2 and glob(*x*)"), ("b", "ndim >"), ("c", "shape[0] = 2")):
            assert f"- the rule of group {label!r}: " in err and f"\n  {text}\n" in err
        assert "'fine'" not in err

    def test_missing_arguments_exit_two(self, capsys):
        assert main(["check"]) == 2
        assert main([]) == 2
        assert "required" in capsys.readouterr().err


HOSTILE_FACTORY = textwrap.dedent("""
    import sys
    import mlx.core as mx

    def loops():
        while True:
            pass

    def exits():
        sys.exit(0)

    def exits_badly():
        raise SystemExit("bye")

    def deep():
        tree = {"w": mx.zeros((2,))}
        for _ in range(100_000):
            tree = {"a": tree}
        return tree

    def cyclic():
        tree = {"w": mx.zeros((2,))}
        tree["self"] = tree
        return tree

    def deaf():
        # Stuck inside C with the time limit's signal blocked: no Python handler can run.
        import ctypes, signal
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
        ctypes.CDLL(None).sleep(1000)

    def surrogate_path():
        return {"w\\ud800": mx.zeros((2, 2)), "b": mx.zeros((2,))}
""")


class TestHostileInputs:
    """Whatever the model code or the rule file does, the CLI exits 2 with a message, never a
    traceback with exit 1 ("check failed") or a silent 0."""

    @pytest.fixture
    def hostile(self, tmp_path, monkeypatch):
        name = f"hostile_{abs(hash(str(tmp_path)))}"
        (tmp_path / f"{name}.py").write_text(HOSTILE_FACTORY)
        (tmp_path / f"{name}_exits_on_import.py").write_text("import sys\nsys.exit(0)\n")
        save_rules(tmp_path / "clean.toml", ["muon", "adamw"], ["ndim == 2"])
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "path", list(sys.path))
        return name

    def test_a_factory_that_loops_is_stopped_by_the_time_limit(self, hostile, tmp_path):
        done = run("check", "clean.toml", "--model", f"{hostile}:loops", "--timeout", "2",
                   cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "did not finish within 2 s" in done.stderr and "--timeout" in done.stderr
        assert "Traceback" not in done.stderr

    @pytest.mark.slow
    def test_model_code_deaf_to_the_time_limit_still_ends_the_process(self, hostile, tmp_path):
        done = run("check", "clean.toml", "--model", f"{hostile}:deaf", "--timeout", "1",
                   cwd=tmp_path)
        assert done.returncode == 2 and "did not stop within 1 s" in done.stderr

    def test_the_time_limit_has_a_default(self):
        from multiopt_lab._src.cli import build_parser

        args = build_parser().parse_args(["check", "r.toml", "--model", "m:f"])
        assert args.timeout > 0

    @pytest.mark.parametrize("factory, words", [
        ("exits", "exited (SystemExit: 0)"),
        ("exits_badly", "exited (SystemExit: bye)"),
    ])
    def test_sys_exit_in_model_code_is_not_a_pass(self, hostile, tmp_path, factory, words):
        done = run("check", "clean.toml", "--model", f"{hostile}:{factory}", cwd=tmp_path)
        assert done.returncode == 2 and words in done.stderr, (done.returncode, done.stderr)
        assert done.stdout == ""

    def test_sys_exit_while_importing_is_not_a_pass(self, hostile, tmp_path):
        done = run("check", "clean.toml", "--model", f"{hostile}_exits_on_import:x", cwd=tmp_path)
        assert done.returncode == 2 and "exited (SystemExit: 0)" in done.stderr

    @pytest.mark.parametrize("factory", ["deep", "cyclic"])
    def test_a_tree_too_deep_or_holding_itself_is_a_usage_error(self, hostile, tmp_path, factory):
        done = run("check", "clean.toml", "--model", f"{hostile}:{factory}", cwd=tmp_path)
        assert done.returncode == 2, done.stderr[-500:]
        assert "nested too deeply or contains itself" in done.stderr
        assert "Traceback" not in done.stderr

    def test_a_path_with_a_lone_surrogate_is_printed_escaped(self, hostile, tmp_path):
        done = run("check", "clean.toml", "--model", f"{hostile}:surrogate_path", "--tree",
                   cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-500:]
        assert "\\ud800" in done.stdout

    @pytest.mark.parametrize("name, text", [
        ("huge.toml", "version = " + "9" * 5000 + "\n[[group]]\nlabel = 'all'\n"),
        ("huge.json", '{"version": ' + "9" * 5000 + ', "group": [{"label": "all"}]}'),
        ("huge_label.json", '{"group": [{"label": ' + "9" * 5000 + '}]}'),
        ("surrogate.json", '{"group": [{"label": "a\\ud800"}]}'),
        ("surrogate_rule.json", '{"group": [{"label": "a", "rule": "path == \'\\udc00\'"}, '
                                '{"label": "b"}]}'),
    ])
    def test_crafted_rule_files_exit_two_with_a_message(self, hostile, tmp_path, name, text):
        (tmp_path / name).write_text(text)
        done = run("check", name, "--model", f"{hostile}:surrogate_path", cwd=tmp_path)
        assert done.returncode == 2, (done.returncode, done.stderr[-800:])
        assert done.stderr.startswith("multiopt-lab: error: "), done.stderr[-800:]
        assert "Traceback" not in done.stderr


class TestTheTimeLimitNamesThePhase:
    """--timeout covers reading the rule file too, and its message names the slow phase
    (61d2966 read the file outside the limit, then blamed the model)."""

    def test_a_slow_rule_file_is_named_not_the_model(self, project, tmp_path, capsys):
        groups = 2_000  # parsing its rules takes far longer than the 1 ms allowed
        save_rules(tmp_path / "big.toml", [f"g{i}" for i in range(groups)],
                   [f"glob('*.l{i}.*')" for i in range(groups - 1)])
        code = main(["check", "big.toml", "--model", f"{project}:make_model", "--timeout", "0.001"])
        err = capsys.readouterr().err
        assert code == 2
        assert "error: reading the rule file big.toml did not finish within 0.001 s" in err, err
        assert project not in err

    def test_a_model_that_loops_is_named(self, tmp_path, monkeypatch, capsys):
        name = f"loops_{abs(hash(str(tmp_path)))}"
        (tmp_path / f"{name}.py").write_text("def make():\n    while True:\n        pass\n")
        save_rules(tmp_path / "clean.toml", ["muon", "adamw"], ["ndim == 2"])
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "path", list(sys.path))
        assert main(["check", "clean.toml", "--model", f"{name}:make", "--timeout", "0.5"]) == 2
        err = capsys.readouterr().err
        assert f"importing and building the model {name}:make did not finish within 0.5 s" in err
