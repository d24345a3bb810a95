"""Partitions: applying ordered rules to a parameter tree.

:func:`assign` gives an :class:`Assignment` (path -> group label, which rule
matched, which others would have), its :class:`Diagnostics` (one list of
findings, optimizer contracts included when the optimizers are given) and
its tables;
:class:`ParameterTable` is the flat, columnar view of a tree that rules are
evaluated on.
"""
