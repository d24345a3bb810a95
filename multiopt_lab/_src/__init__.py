"""multiopt_lab's implementation: private, free to change. The public names are
in multiopt_lab/__init__.py and the documented modules (see docs/api.md)."""
