"""The Access pages in real headless Chromium under the strict CSP: the customer's admin
makes an installer package and the browser saves the file (a data: link with
``download``), then revokes it after the confirmation page; the technician follows the
console's link from a machine to its session history."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from fjernhjelp.control.package import fingerprint, read_package
from fjernhjelp.i18n import Translator
from fjernhjelp.server.app import create_app
from tests.e2e.conftest import free_port
from tests.helpers import Account
from tests.portal.access_world import Site, build_site

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]
T = Translator("nb")


@pytest.fixture
def site(db, state) -> Site:
    return build_site(db, state)


@pytest.fixture
def base_url(state) -> Iterator[str]:  # type: ignore[no-untyped-def]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(state=state), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="access-pages-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _log_in(page, base: str, account: Account, landing: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + "/login")
    page.fill("input[name=username]", account.username)
    page.fill("input[name=password]", account.password)
    page.click("main button[type=submit]")
    page.wait_for_url("**/login/factor**")
    page.fill("input[name=code]", account.code())
    page.click("main button[type=submit]")
    page.wait_for_url(f"**{landing}")


def test_make_download_and_revoke_a_package(browser, site: Site, base_url: str) -> None:
    w = site.world
    context = browser.new_context(locale="nb-NO", accept_downloads=True)
    try:
        page = context.new_page()
        failed: list[str] = []
        page.on(
            "response",
            lambda r: (
                failed.append(r.url)
                if r.status >= 400 and not r.url.endswith("/favicon.ico")
                else None
            ),
        )
        _log_in(page, base_url, w.gp_admin, "/portal")
        page.get_by_role("link", name=T("menu.packages")).click()
        page.wait_for_url("**/portal/packages")
        form = page.get_by_test_id("package-form")
        form.locator("input[name=label]").fill("Resepsjonen")
        form.locator("input[name=max_uses]").fill("3")
        form.get_by_role("button", name=T("package.create")).click()
        page.get_by_test_id("download-package").wait_for()
        with page.expect_download() as info:
            page.get_by_test_id("download-package").click()
        download = info.value
        assert download.suggested_filename.startswith("fjernhjelp-")
        with open(download.path(), "rb") as fh:
            data = fh.read()
        key = fingerprint(w.state.keys.signing.public_key())
        package = read_package(data, expected_fingerprint=key)
        assert package.group == w.group.name
        command = page.get_by_test_id("install-command").inner_text()
        assert command.endswith(f"{download.suggested_filename} --expect-fingerprint {key}")

        page.goto(base_url + "/portal/packages")
        row = page.get_by_test_id("package").filter(has_text="Resepsjonen")
        assert T("package.uses_left", left=3, max=3) in row.inner_text()
        row.get_by_test_id("revoke-package").click()
        page.get_by_test_id("confirm-revoke").click()
        page.wait_for_url("**/portal/packages?notice=package_revoked")
        assert row.get_by_test_id("package-state").inner_text() == T("package.states.revoked")
        assert failed == []
    finally:
        context.close()


def test_the_console_links_a_machine_to_its_sessions(browser, site: Site, base_url: str) -> None:
    w = site.world
    machine = site.machine("lege-pc-07")
    site.session(machine, w.tech, ended_by_user=True)
    context = browser.new_context(locale="nb-NO")
    try:
        page = context.new_page()
        _log_in(page, base_url, w.tech, "/console")
        item = page.locator(f"li[data-machine-id='{machine.id}']")
        item.locator("a.history").click()
        page.wait_for_url(f"**/portal/machines/{machine.id}")
        sessions = page.get_by_test_id("session")
        assert sessions.count() == 1
        text = sessions.inner_text()
        assert T("machine.consent_was.given") in text and T("machine.ended_by_who.user") in text
    finally:
        context.close()
