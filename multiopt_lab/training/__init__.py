"""Training runs: :func:`train`, the :class:`History` it records, progress and stopping.

Example:
    >>> from multiopt_lab.training.history import History
    >>> History().runs
    ()
"""
