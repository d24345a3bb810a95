"""The package's version, in one place: ``multiopt_lab.__version__`` and the run report read it."""

__version__ = "0.1.0"
