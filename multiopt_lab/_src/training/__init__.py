"""Training runs: :func:`train`, the :class:`History` it records, progress and stopping.

Example:
    >>> from multiopt_lab._src.training.history import History
    >>> History().runs
    ()
"""
