"""Runnable example scripts (``python -m multiopt_lab.examples.scripts.<name>``)."""
