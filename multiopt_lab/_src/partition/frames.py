"""pandas views of an assignment: one row per parameter, one row per group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from multiopt_lab._src.text_fit import DEFAULT_WIDTH, wrap

__all__ = ["parameter_frame", "group_summary", "GroupSummary"]


def _percent(share: float) -> str:
    return f"{share:.1%}".rjust(6)


class GroupSummary(pd.DataFrame):
    """The frame :func:`group_summary` returns: a plain ``DataFrame`` to compute with,
    shown with its shares in percent and every rule whole, a long one continued
    on the next lines within 100 columns (a slice or a copy is a plain ``DataFrame``).
    """

    @property
    def _constructor(self):
        return pd.DataFrame

    def _formatters(self) -> dict:
        return {"share": _percent} if "share" in self.columns else {}

    def __repr__(self) -> str:
        text = self.to_string(formatters=self._formatters(), max_colwidth=None)
        if self.columns[-1] != "rule" or max(map(len, text.splitlines()), default=0) <= DEFAULT_WIDTH:
            return text
        # A long rule starts at one column and continues under itself, broken between
        # words: every line within the text forms' width, every rule whole.
        rest = pd.DataFrame(self).iloc[:, :-1].to_string(formatters=self._formatters())
        lines = rest.splitlines()
        header_rows = len(lines) - len(self)
        start = max(map(len, lines)) + 2
        out = [lines[0].ljust(start) + "rule", *(line.rstrip() for line in lines[1:header_rows])]
        for line, rule in zip(lines[header_rows:], self["rule"].tolist()):
            out += wrap(str(rule), DEFAULT_WIDTH, line.ljust(start), " " * start)
        return "\n".join(out)

    def _repr_html_(self) -> str:
        return self.to_html(formatters=self._formatters(), max_cols=None, max_rows=None,
                            classes="mol-summary", border=0)


def parameter_frame(assignment) -> pd.DataFrame:
    """One row per parameter, flatten order.

    Columns: ``path``, ``module_path`` (the path of the module holding it:
    the path without its last part), ``name``, ``group`` (label),
    ``group_index``, ``rule`` (description of the rule that won, None for
    the fallback), ``also_matched`` (labels of the other rules that
    matched), ``shape``, ``ndim``, ``dtype``, ``size``, and ``module`` (the
    class of the module holding it, what rules read as ``module``; None when
    the assignment was made from a parameter dict). The words mean what
    they mean in rules: ``module`` is a class, ``module_path`` a path.
    """
    table, labels, rules = assignment.table, assignment.group_labels, assignment.rules
    winners = assignment.winners.tolist()
    masks = assignment.masks
    also = [tuple(labels[k] for k in np.flatnonzero(masks[:, i]).tolist() if k != g)
            for i, g in enumerate(winners)]
    return pd.DataFrame({
        "path": table.paths,
        "module_path": [p.rpartition(".")[0] for p in table.paths],
        "name": table.names,
        "group": [labels[g] for g in winners],
        "group_index": winners,
        "rule": [None if rules[g] is None else rules[g].describe() for g in winners],
        "also_matched": also,
        "shape": table.shapes,
        "ndim": table.ndims,
        "dtype": table.dtypes,
        "size": table.sizes,
        "module": table.module_names,
    })


def group_summary(assignment) -> pd.DataFrame:
    """One row per group (partition order, indexed by label).

    Columns: ``count`` (parameters), ``size`` (values, exact integers),
    ``share`` (fraction of all values; 0 for an empty tree) and ``rule``
    (``(fallback)`` for the last group).
    """
    n_groups = len(assignment.group_labels)
    counts = np.bincount(assignment.winners, minlength=n_groups).astype(np.int64)
    sizes = np.zeros(n_groups, dtype=np.int64)
    np.add.at(sizes, assignment.winners, np.asarray(assignment.table.sizes, dtype=np.int64))
    total = int(sizes.sum())
    return GroupSummary(
        {"count": counts, "size": sizes,
         "share": sizes / total if total else np.zeros(n_groups),
         "rule": [assignment.rule_text(g) for g in range(n_groups)]},
        index=pd.Index(assignment.group_labels, name="group"),
    )
