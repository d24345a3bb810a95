"""A whole MultiOptimizer as a rule file: each group's optimizer and schedule described as data.

* :mod:`~multiopt_lab._src.optimizer_file.classes`: the optimizer classes a file may
  name (MLX's, and ``register_optimizer``'s);
* :mod:`~multiopt_lab._src.optimizer_file.schedules`: MLX's schedules described and
  built again;
* :mod:`~multiopt_lab._src.optimizer_file.as_data`: one optimizer as its class's
  name and keyword arguments, and back;
* :mod:`~multiopt_lab._src.optimizer_file.save_load`: ``save_optimizer`` and
  ``load_optimizer``, on the rule file format of :mod:`multiopt_lab._src.io.rulefile`.
"""
