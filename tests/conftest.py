"""Shared test configuration."""

import pytest


def pytest_collection_modifyitems(config, items):
    # Playwright's sync API keeps an asyncio loop marked as running on the main
    # thread while its (session-wide) browser is open. Code under test that
    # asks for the running loop (the widgets' debouncers) would then schedule
    # onto a loop that never turns, so the browser tests go last.
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
