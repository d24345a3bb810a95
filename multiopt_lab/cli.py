"""Command line: guard a project's optimizer filters in CI.

``python -m multiopt_lab check RULES.toml --model package.module:factory``
prints each group's share and the diagnostics (warnings, near misses
included, and what only the fallback took), and exits with

* 0 when ``Assignment.check`` passes,
* 1 when it fails (the problems are listed),
* 2 on a usage error: unreadable rule file, bad import path, a factory that
  fails or returns neither an ``nn.Module`` nor a parameter tree.

``factory`` is called without arguments (an ``nn.Module`` or a dict found at
that name is used as is). The current directory is importable. With a model
(not a parameter dict), rules may read ``module`` and ``modules``.

Example:
    >>> main(["check", "missing.toml", "--model", "x:y"])  # the error goes to stderr
    2
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings
from typing import Any, Sequence

import mlx.core as mx
import mlx.nn as nn

from multiopt_lab.device import describe_device
from multiopt_lab.partition.assignment import CoverageError, assign
from multiopt_lab.partition.diagnostics import NearMissWarning
from multiopt_lab.partition.text import format_summary
from multiopt_lab.io.rulefile import RuleFileError, load_rules
from multiopt_lab.rules import RuleError

__all__ = ["main", "build_parser", "load_model", "UsageError"]

PROG = "multiopt-lab"


class UsageError(Exception):
    """A problem with the command line's inputs (exit status 2)."""


def build_parser() -> argparse.ArgumentParser:
    """The ``multiopt-lab`` argument parser (subcommand ``check``).

    Example:
        >>> build_parser().parse_args(["check", "r.toml", "--model", "m:f"]).allow_fallback
        True
    """
    parser = argparse.ArgumentParser(prog=PROG, description="Check how rules split a model's "
                                     "parameters between optimizers.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="assign a model's parameters with a rule file and "
                                "fail on dead/shadowed rules (and, if asked, on fallback or overlap)")
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
    check.add_argument("--tree", action="store_true", help="also print every parameter's group")
    return parser


def load_model(spec: str) -> Any:
    """Import ``module:attribute`` and produce the parameters to check.

    Raises:
        UsageError: The spec is malformed, the import or the factory fails, or
            the result is neither an ``nn.Module`` nor a dict/list tree.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"--model expects MODULE:FACTORY (e.g. mypackage.models:make_model), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does; the console script does not
    try:
        target: Any = importlib.import_module(module_name)
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
        except Exception as err:
            detail = "".join(traceback.format_exception_only(type(err), err)).strip()
            raise UsageError(f"calling {spec} failed: {detail}") from None
    if not isinstance(target, (nn.Module, dict, list, tuple)):
        raise UsageError(f"{spec} gave a {type(target).__name__}; expected an nn.Module or a "
                         "parameter tree (dict)")
    return target


def _check(args: argparse.Namespace) -> int:
    try:
        labels, rules = load_rules(args.rules)
        assignment = assign(load_model(args.model), rules, labels)
    except (UsageError, RuleFileError, RuleError, TypeError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    table = assignment.table
    print(f"rules: {args.rules} ({len(labels)} groups)")
    print(f"model: {args.model} ({len(table)} parameters, {sum(table.sizes):,} values)")
    print(f"device: {describe_device()}, mlx {mx.__version__}")
    print()
    if args.tree:
        print(assignment.text())
    else:
        print(format_summary(assignment, with_rules=True))
    print()
    print(assignment.diagnostics)
    settings = (f"allow_fallback={args.allow_fallback}, allow_overlap={args.allow_overlap}, "
                f"allow_near_misses={args.allow_near_misses}")
    try:
        with warnings.catch_warnings():  # near misses are listed above already
            warnings.simplefilter("ignore", NearMissWarning)
            assignment.check(allow_fallback=args.allow_fallback, allow_overlap=args.allow_overlap,
                             allow_near_misses=args.allow_near_misses)
    except CoverageError as err:
        print(f"\ncheck failed ({settings}):\n{err}")
        return 1
    print(f"\ncheck passed ({settings})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Example:
        >>> main(["check", "--help"])  # doctest: +ELLIPSIS
        usage: multiopt-lab check [-h] --model MODULE:FACTORY ...
        0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors, 0 for --help
        return int(exit_.code or 0)
    return _check(args)
