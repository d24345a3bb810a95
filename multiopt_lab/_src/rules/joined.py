"""Many paths in one scan: a table's paths joined by newlines.

Asking RE2, or ``str.__contains__``, about each path costs a call per path;
asking once about the paths joined by newlines costs a call per path that
matches, and one more. :func:`scannable` says when that is possible (no path
holds a newline, the rows asked about are sorted and not too sparse), and
:func:`contains_rows` is ``text in path`` for many rows (``glob("*x*")``,
``"x" in path``). The regex scan is in :mod:`multiopt_lab._src.rules.matching`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate

import numpy as np

__all__ = ["JoinedPaths", "scannable", "contains_rows"]

#: Below this many rows, asking path by path costs less than preparing a scan.
FEW_ROWS = 16
# A literal found in more than one row in this many is tested path by path.
_DENSE = 10


class JoinedPaths:
    """Paths joined by newlines as UTF-8 bytes, with where each one starts.

    Built once per table (:attr:`ParameterTable.joined_paths
    <multiopt_lab.ParameterTable.joined_paths>`); :meth:`of`
    gives None when a path holds a newline itself (then every pattern is
    matched path by path).

    Attributes:
        data (bytes): The paths joined by ``b"\\n"``.
        starts (list[int]): Byte offset of each path in ``data``.
        paths (Sequence[str]): The paths themselves.
    """

    __slots__ = ("data", "starts", "paths")

    def __init__(self, data: bytes, starts: list[int], paths):
        self.data, self.starts, self.paths = data, starts, paths

    @classmethod
    def of(cls, paths) -> JoinedPaths | None:
        text = "\n".join(paths)
        if text.count("\n") != max(len(paths) - 1, 0):
            return None
        data = text.encode("utf-8", "surrogatepass")
        if len(data) == len(text):  # ASCII: byte offsets are character offsets
            lengths = [len(p) + 1 for p in paths]
        else:
            lengths = [len(p.encode("utf-8", "surrogatepass")) + 1 for p in paths]
        starts = list(accumulate(lengths[:-1], initial=0)) if paths else []
        return cls(data, starts, paths)


def scannable(table, rows: np.ndarray) -> JoinedPaths | None:
    """The table's joined paths when a scan may answer for ``rows``, else None.

    A scan walks the rows in order (they come sorted from ``assign`` and the
    logic nodes: anything else goes path by path) and reads the text between
    them (far fewer rows than the table also go path by path).
    """
    if len(rows) < FEW_ROWS:
        return None
    joined = getattr(table, "joined_paths", None)
    if joined is None or len(rows) * 8 < len(joined.starts):
        return None
    if len(rows) > 1 and not bool((rows[1:] > rows[:-1]).all()):
        return None
    return joined


def contains_rows(table, rows: np.ndarray, text: str) -> np.ndarray | None:
    """``[text in table.paths[i] for i in rows]`` as bools, in one scan; None where a scan
    cannot answer or would cost more (the text is in many paths): then ask path by path.
    """
    joined = scannable(table, rows)
    if joined is None or "\n" in text:  # a newline would match across two paths
        return None
    found = np.zeros(len(rows), dtype=bool)
    if not text:
        found[:] = True
        return found
    needle = text.encode("utf-8", "surrogatepass")
    data, starts = joined.data, joined.starts
    # A find per matching row costs about ten times ``text in path``: where the text
    # is everywhere (every row that holds it holds one of these), ask path by path.
    if data.count(needle) * _DENSE > len(rows):
        return None
    wanted = rows.tolist()
    find = data.find
    k = 0
    while k < len(wanted):
        at = find(needle, starts[wanted[k]])
        if at < 0:
            break
        row = bisect_right(starts, at) - 1  # UTF-8: a match starts on a character
        k = bisect_left(wanted, row, k)
        if k < len(wanted) and wanted[k] == row:
            found[k] = True
            k += 1
    return found
