"""The implementation of :mod:`multiopt_lab.widgets` (private)."""
