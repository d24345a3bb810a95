"""Training runs: :func:`train`, the :class:`History` it records, progress and stopping.
"""
