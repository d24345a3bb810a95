"""The implementation of :mod:`multiopt_lab.recipes` (private)."""
