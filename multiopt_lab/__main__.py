"""``python -m multiopt_lab`` (and the ``multiopt-lab`` script): see :mod:`multiopt_lab._src.cli`.

Example:
    $ python -m multiopt_lab check rules.toml --model mypackage.models:make_model
"""

from multiopt_lab._src.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
