"""Screenshots of single elements, and waiting for an element to look different.

JupyterLab scrolls inside its panes, so a full-page screenshot shows only the
viewport: always screenshot a locator.

Example:
    >>> save_screenshot(cell, "tree-widget", Path("test-artifacts/screenshots"))  # doctest: +SKIP
    >>> wait_until_looks_different(monitor_figure)                               # doctest: +SKIP
"""

from __future__ import annotations

import re
import time
from pathlib import Path


def save_screenshot(locator, name: str, folder: Path) -> Path:
    """Screenshot one element (JupyterLab scrolls inside panes, so never the page).

    Example:
        >>> save_screenshot(cell, "tree-widget", Path("test-artifacts/screenshots"))  # doctest: +SKIP
        PosixPath('test-artifacts/screenshots/tree-widget.png')
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"Expected a screenshot name of letters, digits, '_', '.', '-'; got {name!r}.")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(path), animations="disabled")
    return path


def wait_until_looks_different(locator, before: bytes | None = None, timeout_ms: int = 30_000,
                               interval_ms: int = 250) -> bytes:
    """Wait until ``locator`` renders differently from ``before`` (a figure redrawn, a value changed).

    Compares screenshots, so it sees what a user sees: a canvas redrawn by
    ipympl changes no DOM attribute, only pixels.

    Args:
        before (bytes, optional): ``locator.screenshot()`` taken before the
            action; take it yourself when the action is quick, or the change
            may land before this function looks. Default: a screenshot now.

    Returns:
        bytes: the new screenshot (PNG).

    Raises:
        AssertionError: nothing changed within ``timeout_ms``.

    Example:
        >>> before = answer.screenshot()                  # doctest: +SKIP
        >>> button.click()                                # doctest: +SKIP
        >>> wait_until_looks_different(answer, before)    # doctest: +SKIP
    """
    if before is None:
        before = locator.screenshot(animations="disabled")
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        locator.page.wait_for_timeout(interval_ms)
        now = locator.screenshot(animations="disabled")
        if now != before:
            return now
    raise AssertionError(f"Expected {locator} to change on screen within {timeout_ms / 1000:.0f} s; it did not.")
