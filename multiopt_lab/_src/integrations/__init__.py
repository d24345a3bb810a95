"""The implementation of :mod:`multiopt_lab.integrations` (private)."""
