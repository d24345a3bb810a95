"""The core layer: mlx, the standard library and pandas only.

Nothing here may import ``render``, ``plots``, ``widgets``, ipywidgets,
IPython or matplotlib (``tests/test_package.py`` checks it).
"""
