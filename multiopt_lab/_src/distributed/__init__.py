"""Data-parallel training on ``mx.distributed``: sync checks, checkpoints, launching ranks.
"""
