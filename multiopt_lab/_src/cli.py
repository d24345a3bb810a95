"""Command line: guard a project's optimizer filters in CI, and report a run.

``python -m multiopt_lab report RULES --model package.module:factory
--history run.csv -o run.html`` writes a run's one-file HTML report (see
:mod:`multiopt_lab._src.reporting`) from a rule file or a checkpoint, the model
and a saved History; it exits 0, or 2 naming what it could not read.

``python -m multiopt_lab check RULES.toml --model package.module:factory``
prints each group's share and the findings (errors, warnings and notes, in
the words every other surface uses, and what only the fallback took), and
exits with

* 0 when ``Assignment.check`` passes,
* 1 when it fails: always on an error (a dead or shadowed rule), and on
  the warnings, notes or kinds the ``--no-allow-*`` options name (the
  problems are listed),
* 2 on a usage error: unreadable rule file or invalid rules (every invalid
  rule of the file is listed), bad import path, a factory that fails, exits
  (``sys.exit``) or returns neither an ``nn.Module`` nor a parameter tree,
  or a run past ``--timeout`` (which covers reading the rule file, building
  the model and the check, and names the phase that was slow).

A rule file that holds each group's optimizer (``save_optimizer``) has its
optimizers built too, after the model (whose module may register optimizer
classes): an unknown class or a bad argument exits 2, naming the group.

Piped into a reader that stops early (``| head``), it ends quietly with the
same exit status.

``factory`` is called without arguments (an ``nn.Module`` or a dict found at
that name is used as is). The current directory is importable. With a model
(not a parameter dict), rules may read ``module`` and ``modules``. Text that
the terminal cannot show (a lone surrogate in a path) is printed escaped.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import traceback
import warnings
from typing import Any
from collections.abc import Callable, Sequence

import mlx.core as mx
import mlx.nn as nn

from multiopt_lab._src.device import describe_device
from multiopt_lab._src.partition.assignment import CoverageError, assign
from multiopt_lab._src.partition.findings import FindingWarning
from multiopt_lab._src.partition.text import format_summary
from multiopt_lab._src.io.rulefile import RuleFileContents, RuleFileError, read_rule_file
from multiopt_lab._src.optimizer_file.as_data import optimizer_from_data
from multiopt_lab._src.rules import RuleError

__all__ = ["main", "build_parser", "load_model", "UsageError"]

PROG = "multiopt-lab"
#: Seconds reading the rule file, the model code (import and factory) and the check may
#: take together by default.
DEFAULT_TIMEOUT_S = 120.0


class UsageError(Exception):
    """A problem with the command line's inputs (exit status 2).
    """


def build_parser() -> argparse.ArgumentParser:
    """The ``multiopt-lab`` argument parser (subcommands ``check`` and ``report``).
    """
    parser = argparse.ArgumentParser(prog=PROG, description="Check how rules split a model's "
                                     "parameters between optimizers.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="assign a model's parameters with a rule file and "
                                "fail on errors (dead or shadowed rules; and, if asked, on warnings, "
                                "notes, fallback, overlap or near misses)")
    check.add_argument("rules", metavar="RULES", help="rule file, .toml or .json")
    check.add_argument("--model", required=True, metavar="MODULE:FACTORY",
                       help="e.g. mypackage.models:make_model; called with no arguments, it "
                            "returns an nn.Module or a parameter dict")
    check.add_argument("--allow-fallback", action=argparse.BooleanOptionalAction, default=True,
                       help="accept parameters only the fallback group catches (default: yes)")
    check.add_argument("--allow-overlap", action=argparse.BooleanOptionalAction, default=True,
                       help="accept parameters several rules match (default: yes)")
    check.add_argument("--allow-near-misses", action=argparse.BooleanOptionalAction, default=True,
                       help="accept parameters the fallback took that look like what a rule took "
                            "(default: yes; they are listed either way)")
    check.add_argument("--allow-warnings", action=argparse.BooleanOptionalAction, default=True,
                       help="accept findings of severity warning (default: yes; listed either way)")
    check.add_argument("--allow-notes", action=argparse.BooleanOptionalAction, default=True,
                       help="accept findings of severity note (default: yes; listed either way)")
    check.add_argument("--tree", action="store_true", help="also print every parameter's group")
    check.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                       help="stop (exit 2) when reading the rule file, importing and building "
                            "the model and checking it take longer; the message names the "
                            f"phase that was slow (default: {DEFAULT_TIMEOUT_S:g}; 0: no limit)")
    _add_report_command(commands)
    return parser


def _add_report_command(commands) -> None:
    """``report``: one self-contained HTML page of a run, from the files it left."""
    report = commands.add_parser(
        "report", help="write a run's report (groups, optimizers, findings, tree, rules, curves, "
        "versions) as one HTML file that opens offline",
        description="Write a one-file HTML report of a run from saved files: the rules (a rule "
        "file, or a checkpoint written by save_state), the model, and a saved History.")
    report.add_argument("rules", metavar="RULES",
                        help="rule file (.toml, .json) or optimizer checkpoint (.safetensors)")
    report.add_argument("--model", required=True, metavar="MODULE:FACTORY",
                        help="e.g. mypackage.models:make_model; called with no arguments, it "
                             "returns an nn.Module or a parameter dict")
    report.add_argument("--history", metavar="FILE", help="a saved History (.csv or .parquet): "
                        "the curves, the optimizers of the run and where it ran")
    report.add_argument("--run", metavar="NAME", help="which run of the History (default: its last)")
    report.add_argument("--title", help="the page's heading (default: 'Run report: RUN')")
    report.add_argument("-o", "--output", default="run.html", metavar="FILE.html",
                        help="where to write the page (default: run.html)")
    report.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                        help="stop (exit 2) when importing and building the model and the report "
                             f"take longer (default: {DEFAULT_TIMEOUT_S:g}; 0: no limit)")


def load_model(spec: str) -> Any:
    """Import ``module:attribute`` and produce the parameters to check.

    Raises:
        UsageError: The spec is malformed, the import or the factory fails or
            exits, or the result is neither an ``nn.Module`` nor a dict/list tree.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"--model expects MODULE:FACTORY (e.g. mypackage.models:make_model), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does; the console script does not
    try:
        target: Any = importlib.import_module(module_name)
    except SystemExit as err:
        raise UsageError(f"importing {module_name!r} exited ({_exit_text(err)}) instead of "
                         "defining the model") from None
    except Exception as err:
        raise UsageError(f"cannot import {module_name!r}: {type(err).__name__}: {err}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(target, (nn.Module, dict, list, tuple)) and callable(target):
        try:
            target = target()
        except SystemExit as err:  # sys.exit() in model code is no model, and no pass
            raise UsageError(f"calling {spec} exited ({_exit_text(err)}) instead of returning "
                             "a model") from None
        except Exception as err:
            detail = "".join(traceback.format_exception_only(type(err), err)).strip()
            raise UsageError(f"calling {spec} failed: {detail}") from None
    if not isinstance(target, (nn.Module, dict, list, tuple)):
        raise UsageError(f"{spec} gave a {type(target).__name__}; expected an nn.Module or a "
                         "parameter tree (dict)")
    return target


def _exit_text(err: SystemExit) -> str:
    return f"SystemExit: {err.code}" if err.code is not None else "SystemExit"


def _say(text: str, stream=None) -> None:
    """Print ``text``; what the stream cannot encode (a lone surrogate) comes out escaped."""
    stream = stream if stream is not None else sys.stdout
    encoding = getattr(stream, "encoding", None) or "utf-8"
    print(text.encode(encoding, "backslashreplace").decode(encoding, "replace"), file=stream)


def _usage_error(message: str) -> int:
    _say(f"{PROG}: error: {message}", sys.stderr)
    return 2


def _check(args: argparse.Namespace, progress: _Progress | None = None) -> int:
    if not args.timeout >= 0:
        return _usage_error(f"--timeout expects seconds >= 0 (0: no limit), got {args.timeout}")
    progress = progress if progress is not None else _Progress()
    try:
        outcome = _within(args.timeout, lambda: _load_and_check(args, progress))
    except (UsageError, RuleFileError, RuleError) as err:
        return _usage_error(str(err))
    except TimeoutError:
        return _usage_error(f"{progress.phase} did not finish within {args.timeout:g} s"
                            f"{progress.hint}; pass --timeout SECONDS to allow more, or 0 for "
                            "no limit")
    lines, code = outcome
    try:
        for line in lines:
            _say(line)
        sys.stdout.flush()
    except BrokenPipeError:  # `check ... | head`: the reader has what it wanted
        _drop_stdout()
    return code


def _drop_stdout() -> None:
    """Send what is left of stdout (and Python's flush at exit) to /dev/null, so that a
    reader that stopped early (``| head``) costs no traceback and no other exit status."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file descriptor (a StringIO): nothing to flush
        pass


class _Progress:
    """The phase ``check`` is in, so that the time limit names what was slow.
    """

    def __init__(self) -> None:
        self.phase, self.hint = "starting", ""

    def enter(self, phase: str, hint: str = "") -> None:
        self.phase, self.hint = phase, hint


def _load_and_check(args: argparse.Namespace, progress: _Progress) -> tuple[list[str], int]:
    """Every phase of ``check`` under the one time limit: the rule file, the model, the
    optimizers the file holds (their contracts are then checked too), the check."""
    contents = _read_rule_file(args, progress)
    progress.enter(f"importing and building the model {args.model}", " (does it loop?)")
    model = load_model(args.model)
    optimizers = _build_optimizers(args, contents, progress)
    return _assign_and_check(args, model, contents.labels, contents.rules, optimizers, progress)


def _read_rule_file(args: argparse.Namespace, progress: _Progress) -> RuleFileContents:
    progress.enter(f"reading the rule file {args.rules}",
                   " (is it very large? every rule is parsed: thousands of groups take seconds)")
    return read_rule_file(args.rules)


def _build_optimizers(args: argparse.Namespace, contents: RuleFileContents,
                      progress: _Progress) -> list | None:
    """Build the optimizers a rule file holds, so a typo in one fails the check (exit 2).

    After the model: the module ``--model`` imports may register optimizer classes.
    Returns one optimizer per group when the file holds every group's (their
    contracts are checked), else None.
    """
    progress.enter(f"building the optimizers of {args.rules}")
    built: list[Any] = []  # an optimizer per group, None where the file names none
    for label, table in zip(contents.labels, contents.optimizers):
        if table is None:
            built.append(None)
            continue
        try:
            built.append(optimizer_from_data(table, f"{args.rules}: group {label!r}"))
        except ValueError as err:
            raise RuleFileError(str(err)) from None
    return built if all(o is not None for o in built) else None


def _assign_and_check(args: argparse.Namespace, model: Any, labels: list, rules: list,
                      optimizers: list | None, progress: _Progress) -> tuple[list[str], int]:
    """The report's lines and the exit status; UsageError for what the model code gave."""
    progress.enter(f"assigning the parameters of {args.model} to the groups of {args.rules}")
    try:
        assignment = assign(model, rules, labels, optimizers=optimizers)
    except RecursionError:
        raise UsageError(f"the parameter tree of {args.model} is nested too deeply or contains "
                         "itself; expected a tree of arrays (an nn.Module or nested dicts/lists)") \
            from None
    except (TypeError, ValueError) as err:
        raise UsageError(f"cannot split the parameters of {args.model}: {err}") from None
    table = assignment.table
    lines = [f"rules: {args.rules} ({len(labels)} groups)",
             f"model: {args.model} ({len(table)} parameters, {sum(table.sizes):,} values)",
             f"device: {describe_device()}, mlx {mx.__version__}", ""]  # type: ignore[attr-defined]  # not in mlx's stub
    progress.enter(f"checking how {args.rules} splits {args.model}")
    lines.append(assignment.text() if args.tree else format_summary(assignment, with_rules=True))
    lines += ["", str(assignment.diagnostics)]
    settings = (f"allow_fallback={args.allow_fallback}, allow_overlap={args.allow_overlap}, "
                f"allow_near_misses={args.allow_near_misses}, allow_warnings={args.allow_warnings}, "
                f"allow_notes={args.allow_notes}")
    try:
        with warnings.catch_warnings():  # the findings are listed above already
            warnings.simplefilter("ignore", FindingWarning)
            assignment.check(allow_fallback=args.allow_fallback, allow_overlap=args.allow_overlap,
                             allow_near_misses=args.allow_near_misses,
                             allow_warnings=args.allow_warnings, allow_notes=args.allow_notes)
    except CoverageError as err:
        return lines + [f"\ncheck failed ({settings}):\n{err}"], 1
    return lines + [f"\ncheck passed ({settings})"], 0


class _TimeLimit(BaseException):
    """Raised in the main thread when --timeout runs out (not an Exception: model code that
    catches every Exception must not swallow it)."""


def _within(seconds: float, work: Callable[[], Any]) -> Any:
    """``work()``, stopped with TimeoutError after ``seconds`` (0: no limit).

    On the main thread a SIGALRM timer interrupts Python code (a loop, a
    sleep). Off the main thread, or without SIGALRM, it runs without a limit.
    The work stays on the calling thread: MLX arrays made on another thread
    abort the process when it exits.
    """
    usable = (seconds and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        return work()

    def stop(_signum, _frame):
        raise _TimeLimit

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return work()
    except _TimeLimit:
        raise TimeoutError from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _hard_deadline(seconds: float, progress: _Progress) -> None:
    """For the command line process: if a phase hangs where no signal reaches it (model code
    inside C, a huge JSON file), end the process with status 2 a little after the limit."""
    if not seconds:
        return

    def expire() -> None:
        _say(f"{PROG}: error: {progress.phase} did not stop within {seconds:g} s, even when "
             "interrupted; exiting", sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(2)

    timer = threading.Timer(seconds + 10.0, expire)
    timer.daemon = True
    timer.start()


def main(argv: Sequence[str] | None = None, *, process: bool | None = None) -> int:
    """Run the command line; returns the exit status.

    Args:
        argv (Sequence[str], optional): The arguments. Default: ``sys.argv[1:]``.
        process (bool, optional): This is the whole process (``python -m
            multiopt_lab``, the ``multiopt-lab`` script): model code that
            hangs out of reach of the time limit's signal ends it.
            Default: ``None`` (True when ``argv`` is None, i.e. read from
            the command line).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors, 0 for --help
        return int(exit_.code or 0)
    progress = _Progress()
    if process or (process is None and argv is None):
        _hard_deadline(args.timeout, progress)
    return _report(args, progress) if args.command == "report" else _check(args, progress)


def _report(args: argparse.Namespace, progress: _Progress | None = None) -> int:
    """``report``: read the files, build the page, write it; 0, or 2 with the reason."""
    # The report draws (render, and plots for the curves): loaded for this command only.
    from multiopt_lab._src.reporting.report import build_report
    from multiopt_lab._src.reporting.setup import setup_of_files
    from multiopt_lab._src.training.history import History

    if not args.timeout >= 0:
        return _usage_error(f"--timeout expects seconds >= 0 (0: no limit), got {args.timeout}")
    if args.run is not None and args.history is None:
        return _usage_error("--run names a run of a History: pass the History with --history FILE")
    if not args.output.lower().endswith((".html", ".htm")):
        return _usage_error(f"--output expects a file name ending in .html, got {args.output!r}")

    progress = progress if progress is not None else _Progress()

    def build():
        history = None
        if args.history is not None:
            progress.enter(f"reading the History {args.history}")
            try:
                history = History.load(args.history)
            except FileNotFoundError:
                raise UsageError(f"no History file at {args.history!r}") from None
            except ValueError as err:
                raise UsageError(f"{args.history} is not a saved History: {err}") from None
        run = args.run
        if history is not None and run is None and history.runs:
            run = history.current_run or history.runs[-1]
        metadata = history.metadata(run) if history is not None and run in history.runs else None
        progress.enter(f"reading {args.rules}")
        setup = setup_of_files(args.rules, metadata)
        progress.enter(f"importing and building the model {args.model}", " (does it loop?)")
        model = load_model(args.model)
        progress.enter("drawing the report")
        return build_report(setup, model, history, run=run, title=args.title)

    try:
        page = _within(args.timeout, build)
        path = page.save(args.output)
    except (UsageError, RuleFileError, RuleError) as err:
        return _usage_error(str(err))
    except (ValueError, TypeError, OSError) as err:
        return _usage_error(str(err))
    except TimeoutError:
        return _usage_error(f"{progress.phase} did not finish within {args.timeout:g} s"
                            f"{progress.hint}; pass --timeout SECONDS to allow more, or 0 for "
                            "no limit")
    _say(f"wrote {path} ({os.path.getsize(path) / 1024:,.0f} KiB): {', '.join(page.sections)}")
    _say(page.summary)
    return 0
