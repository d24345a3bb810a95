"""Data-parallel training on ``mx.distributed``: sync checks, checkpoints, launching ranks.

Example:
    >>> from multiopt_lab._src.distributed.data_parallel import DataParallel
    >>> DataParallel().size
    1
"""
