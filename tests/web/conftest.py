"""Browser tests of the ES modules: a local harness server and Debian's Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import conftest as e2e
from tests.web.console_routes import ConsoleApi
from tests.web.harness import Harness
from tests.web.sessions import wait_until

browser = e2e.browser  # the e2e fixtures: one Chromium per session
page = e2e.page


@pytest.fixture(scope="session")
def harness() -> Iterator[Harness]:
    server = Harness()
    server.console = ConsoleApi()  # type: ignore[attr-defined]
    server.routes.extend(server.console.routes())  # type: ignore[attr-defined]
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tunnel_page(page, harness: Harness):  # type: ignore[no-untyped-def]
    """A blank page with the tunnel modules loaded, under the server's real CSP."""
    page.goto(harness.url + "/test/blank.html")
    wait_until(page, "document.getElementById('status').textContent === 'ready'")
    yield page
    assert page.evaluate("window.cspViolations") == []
