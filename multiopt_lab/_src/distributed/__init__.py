"""Data-parallel training on ``mx.distributed``: sync checks, checkpoints, launching ranks.

Example:
    >>> from multiopt_lab import DataParallel
    >>> DataParallel().size
    1
"""
