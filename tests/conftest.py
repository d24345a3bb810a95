"""Shared test configuration."""

import pytest


def pytest_collection_modifyitems(config, items):
    # Playwright's sync API keeps an asyncio loop marked as running on the main
    # thread while its (session-wide) browser is open. Code under test that
    # asks for the running loop (the widgets' debouncers) would then schedule
    # onto a loop that never turns, so the browser tests go last.
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture
def recorded_comm():
    """Give every widget created in the test a comm that records what it sends."""
    from ipywidgets import Widget
    from ipywidgets.widgets.tests.utils import setup_test_comm, teardown_test_comm

    setup_test_comm()
    yield
    # Widgets left open would be closed by __del__ at interpreter exit, after
    # ipywidgets' globals are gone (a noisy AttributeError): close them now.
    Widget.close_all()
    teardown_test_comm()
