"""Training runs: :func:`train`, the :class:`History` it records, progress and stopping.

Example:
    >>> from multiopt_lab import History
    >>> History().runs
    ()
"""
