"""Trees of arrays as MLX nests them (dicts, lists, tuples): flatten, unflatten, look up.

One module per concept, used by every core folder above it: flattening
(:mod:`~multiopt_lab._src.trees.flatten`), unflattening dotted keys
(:mod:`~multiopt_lab._src.trees.unflatten`), finding what a tree holds at a path
(:mod:`~multiopt_lab._src.trees.lookup`) and copying containers
(:mod:`~multiopt_lab._src.trees.rebuild`).
"""
