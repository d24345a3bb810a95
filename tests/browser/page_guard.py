"""Watch a browser context for what a test must never see.

Three kinds of problem are recorded: a request to anywhere but the local
JupyterLab server (it is blocked too, so nothing ever leaves the machine), an
uncaught JavaScript exception (``pageerror``) and a console error.

Example:
    >>> guard = PageGuard(allowed_host="127.0.0.1")   # doctest: +SKIP
    >>> guard.attach(context)                         # doctest: +SKIP
    >>> page = context.new_page()                     # doctest: +SKIP
    >>> guard.watch(page)                             # doctest: +SKIP
    >>> guard.assert_clean()                          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Schemes that never reach the network: the page builds them itself.
LOCAL_SCHEMES = ("data", "blob", "about")


@dataclass
class PageGuard:
    """Blocks and records outside requests, and records page errors.

    Args:
        allowed_host (str, optional): The one host requests may go to.
            Default: ``"127.0.0.1"``.

    Example:
        >>> guard = PageGuard()
        >>> guard.is_allowed("http://127.0.0.1:8888/lab"), guard.is_allowed("https://cdn.example.org/x.js")
        (True, False)
    """

    allowed_host: str = "127.0.0.1"
    outside_requests: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    console_log: list[str] = field(default_factory=list)

    def is_allowed(self, url: str) -> bool:
        """Whether ``url`` stays on this machine's allowed host.

        Example:
            >>> PageGuard().is_allowed("ws://127.0.0.1:1234/api/kernels/x")
            True
        """
        parts = urlsplit(url)
        return parts.scheme in LOCAL_SCHEMES or parts.hostname == self.allowed_host

    def attach(self, context) -> None:
        """Route every request of a Playwright ``BrowserContext`` through the guard."""
        context.route("**/*", self._route)

    def watch(self, page) -> None:
        """Record ``pageerror`` events, console errors and outside websockets of ``page``."""
        page.on("pageerror", lambda error: self.page_errors.append(f"{error.name}: {error.message}\n{error.stack}"))
        page.on("console", self._on_console)
        page.on("websocket", self._on_websocket)

    def problems(self) -> list[str]:
        """Everything recorded so far that should fail a test, one line each.

        Example:
            >>> guard = PageGuard()
            >>> guard.outside_requests.append("https://example.org/")
            >>> guard.problems()
            ['request left 127.0.0.1 (blocked): https://example.org/']
        """
        return (
            [f"request left {self.allowed_host} (blocked): {url}" for url in self.outside_requests]
            + [f"uncaught page error: {text}" for text in self.page_errors]
            + [f"console error: {text}" for text in self.console_errors]
        )

    def assert_clean(self) -> None:
        """Raise ``AssertionError`` listing every recorded problem, if any.

        Example:
            >>> PageGuard().assert_clean()
        """
        found = self.problems()
        if found:
            listing = "\n  ".join(found)
            raise AssertionError(
                f"Expected a clean browser session, found {len(found)} problem(s):\n  {listing}\n"
                "Fix the notebook or widget that caused them; a request to the internet "
                "usually means a CDN URL in a widget's HTML or JavaScript."
            )

    def take_outside_requests(self) -> list[str]:
        """Return the recorded outside requests and forget them (for tests of the guard)."""
        taken, self.outside_requests = self.outside_requests, []
        return taken

    def _route(self, route) -> None:
        url = route.request.url
        if self.is_allowed(url):
            route.continue_()
        else:
            self.outside_requests.append(url)
            route.abort("blockedbyclient")

    def _on_console(self, message) -> None:
        line = f"[{message.type}] {message.text}"
        self.console_log.append(line)
        if message.type == "error":
            self.console_errors.append(f"{message.text} (at {message.location.get('url', '?')})")

    def _on_websocket(self, websocket) -> None:
        # Page routes do not see websockets; record the outside ones here.
        if not self.is_allowed(websocket.url):
            self.outside_requests.append(websocket.url)
