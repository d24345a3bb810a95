"""A whole MultiOptimizer as a rule file: each group's optimizer and schedule described as data.

* :mod:`~multiopt_lab._src.optimizer_file.classes`: the optimizer classes a file may
  name (MLX's, and ``register_optimizer``'s);
* :mod:`~multiopt_lab._src.optimizer_file.schedules`: MLX's schedules described and
  built again;
* :mod:`~multiopt_lab._src.optimizer_file.as_data`: one optimizer as its class's
  name and keyword arguments, and back;
* :mod:`~multiopt_lab._src.optimizer_file.save_load`: ``save_optimizer`` and
  ``load_optimizer``, on the rule file format of :mod:`multiopt_lab._src.io.rulefile`.

Example:
    >>> import mlx.optimizers as optim
    >>> from multiopt_lab._src.optimizer_file.as_data import optimizer_to_data
    >>> optimizer_to_data(optim.Adagrad(0.1))
    {'class': 'Adagrad', 'learning_rate': 0.1, 'eps': 1e-08}
"""
