"""The implementation of :mod:`multiopt_lab.plots` (private)."""
