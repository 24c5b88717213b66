"""A newcomer's path: start the demo, open it in a browser, log in with password and TOTP."""

from __future__ import annotations

import json
from pathlib import Path

import pyotp
import pytest

from tests.e2e.conftest import start_server

pytestmark = pytest.mark.browser


def test_demo_technician_logs_in_with_totp_and_sees_the_console(
    page, database_url: str, tmp_path: Path
) -> None:
    """One demo server (its start is most of the cost) for the refused code and the
    login that follows it."""
    data_dir = tmp_path / "var"
    server = start_server("demo", data_dir, database_url)
    try:
        creds = json.loads((data_dir / "demo-credentials.json").read_text())
        assert creds["url"] == server.url
        tech = next(a for a in creds["accounts"] if a["role"] == "technician")

        # The front page is the end users' (Support codes); staff log in from its link.
        page.goto(server.url + "/")
        page.get_by_test_id("staff-login").click()
        page.wait_for_url("**/login")
        assert page.locator("h1").inner_text() == "Logg inn"

        # A wrong code in the browser is refused and leads nowhere.
        page.fill("input[name=username]", tech["username"])
        page.fill("input[name=password]", tech["password"])
        page.click("button[type=submit]")
        page.wait_for_url("**/login/factor**")
        right = pyotp.TOTP(tech["totp_secret"]).now()
        page.fill("input[name=code]", "000000" if right != "000000" else "111111")
        page.click("button[type=submit]")
        assert "Koden ble ikke godtatt" in page.get_by_test_id("error").inner_text()
        assert "/console" not in page.url

        # Then the right one, from the start.
        page.goto(server.url + "/login")
        page.fill("input[name=username]", tech["username"])
        page.fill("input[name=password]", tech["password"])
        page.click("button[type=submit]")
        page.wait_for_url("**/login/factor**")
        page.fill("input[name=code]", pyotp.TOTP(tech["totp_secret"]).now())
        page.click("button[type=submit]")
        page.wait_for_url("**/console")
        assert page.get_by_test_id("console-empty").is_visible()
        assert "Tore Tekniker" in page.get_by_test_id("who").inner_text()
        page.screenshot(path=str(tmp_path / "console.png"))

        # The same page in English, chosen from the header.
        page.click("text=English")
        page.wait_for_url("**/console")
        assert page.locator("h1").inner_text() == "Console"
    finally:
        server.stop()
