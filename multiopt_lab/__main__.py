"""``python -m multiopt_lab`` (and the ``multiopt-lab`` script): check rules against a model,
or write a run's report, from the shell; ``python -m multiopt_lab --help`` lists the commands.

Example:
    $ python -m multiopt_lab check rules.toml --model mypackage.models:make_model
"""

from multiopt_lab._src.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
