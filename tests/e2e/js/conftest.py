"""Browser tests of the ES modules (web/static/js): a local harness server, and the
e2e fixtures' Chromium (one Playwright per process: a second one would find the first
one's event loop running)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.js.console_routes import ConsoleApi
from tests.e2e.js.harness import Harness
from tests.e2e.js.sessions import wait_until


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
