"""The MultiOptimizer and its named parts: plan, update, repartition, metrics, guards.

Example:
    >>> import mlx.optimizers as optim
    >>> from multiopt_lab import MultiOptimizer
    >>> MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"]).labels
    ('muon', 'adamw')
"""
