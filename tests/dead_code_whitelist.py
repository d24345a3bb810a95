"""Names vulture cannot see used, each with who uses it (read by tests/test_dead_code.py).

This file is parsed, never run: each line "uses" a name, as vulture's own
whitelists do. The public API is not listed here: the test takes it from the
public modules' ``__all__`` and their classes. Add a name here only when
something outside the Python code uses it (a framework calls it by name), or
when only the tests use it on purpose, and say which.
"""
# ruff: noqa
# mypy: ignore-errors

# -- Python, IPython and Jupyter call these by name ----------------------------------------
_.__getattr__                          # PEP 562: a module's lazy attributes (the widgets)
_._repr_html_                          # IPython's rich display of core objects
_._ipython_display_                    # IPython's display of the lab and the monitor
_.include; _.exclude                   # IPython passes _repr_mimebundle_(include=, exclude=)
_._jupyter_server_extension_points     # jupyter_server finds the saved-notebooks extension
_._load_jupyter_server_extension       # ... and loads it

# -- ipywidgets traits set from Python for the front end to read -----------------------------
_.disabled; _.bar_style; _.icon; _.button_style

# -- other libraries read these by name --------------------------------------------------------
_._constructor                         # pandas: a DataFrame subclass's constructor
_.log_errors; _.never_capture; _.never_nl  # RE2's Options, read by re2.compile
# The rule parser's node handlers, found by the AST node's class name (parser.py).
_._Constant; _._Name; _._Tuple; _._UnaryOp; _._BinOp; _._BoolOp; _._Compare; _._Call; _._Subscript

# -- pytest, and the libraries the tests drive --------------------------------------------------
_.pytestmark                           # a module's marks
_.pytest_collection_modifyitems        # conftest.py's hooks, called by pluggy by name,
_.pytest_runtest_makereport; _.pytest_runtest_call; _.pytest_terminal_summary
_.exitstatus                           # with their arguments passed by name
_.recorded_comm; _.comms; _.without_cycle_collector  # fixtures requested for their effect
_.handle_starttag; _.handle_endtag; _.handle_data    # html.parser.HTMLParser's callbacks
_.betas; _.eps; _.bias                 # set on MLX optimizers and modules, which read them
_.fire                                 # the sentinel module a hostile rule file would call

# -- used only by the tests, on purpose ----------------------------------------------------------
_.leaf_sums                 # per-parameter sums in the pieces' order, checked against NumPy
_.details_text              # the text twin of details_html, which the tests compare exactly
_.clear_selection_cache     # a test starts from an empty rule cache
_.running; _.wait_closed    # a test awaits the monitor pacer's thread instead of sleeping
_.PRIVATE_NAMES             # the adapters' lists of private names the lint tests scan for
