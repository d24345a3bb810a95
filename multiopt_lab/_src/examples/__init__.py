"""The implementation of :mod:`multiopt_lab.examples` (private)."""
