"""The end user's start page in a real browser: a technician makes a Support code in the
console; a second browser (a phone-sized one, in Norwegian) enters it on the public start
page and sees who wants to help. Also the code field's accessibility: its label, its
hint, the numeric keyboard and one-time-code autofill, and English a click away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.console_live import log_in
from tests.live.live import LiveSite
from tests.portal.world import build_world

pytestmark = [pytest.mark.browser, pytest.mark.one_backend(-1)]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def site(db, state, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:  # type: ignore[no-untyped-def]
    world = build_world(db, state, grant=False)  # the agreement covers Support
    live = LiveSite(world, tmp_path, database_url)
    live.start_server()
    try:
        yield live
    finally:
        live.stop()


def test_the_end_user_enters_the_code_and_sees_who_wants_to_help(  # type: ignore[no-untyped-def]
    browser, site: LiveSite, tmp_path: Path
) -> None:
    assert site.server is not None
    url = site.server.url
    technician = browser.new_context(locale="nb-NO").new_page()
    log_in(technician, site)
    technician.get_by_test_id("support-new").click()
    technician.wait_for_url("**/console/support/new")
    technician.get_by_test_id("support-customer-choice").select_option(
        label="Legekontoret Fjordbyen"
    )
    technician.get_by_test_id("support-create").click()
    code = technician.get_by_test_id("support-code-shown").inner_text()
    assert len(code) == 11 and code[3] == " " and code[7] == " "  # "482 193 775"
    assert technician.get_by_test_id("support-link").inner_text() == (
        f"{url}/s/{code.replace(' ', '')}"
    )

    context = browser.new_context(locale="nb-NO", viewport=PHONE, has_touch=True)
    page = context.new_page()
    page.goto(url + "/")
    field = page.get_by_label("Koden du har fått")
    assert field.get_attribute("inputmode") == "numeric"
    assert field.get_attribute("autocomplete") == "one-time-code"
    hint = page.locator("#" + str(field.get_attribute("aria-describedby")))
    assert "ni sifre" in hint.inner_text()
    # Readable on a phone: large type, and nothing wider than the screen.
    size = field.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 24
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.get_by_test_id("staff-login").is_visible()
    page.screenshot(path=str(tmp_path / "start-nb.png"))

    # English, one click away, and back.
    page.click("text=English")
    page.wait_for_url(url + "/")
    assert page.get_by_label("The code you were given").is_visible()
    page.click("text=Norsk")
    page.wait_for_url(url + "/")

    # A wrong code: one sentence, the field again, marked invalid and described by it.
    page.get_by_label("Koden du har fått").fill("000 000 000")
    page.get_by_test_id("support-continue").click()
    assert "Koden stemmer ikke" in page.get_by_test_id("support-error").inner_text()
    field = page.get_by_label("Koden du har fått")
    assert field.get_attribute("aria-invalid") == "true"
    assert "support-code-error" in str(field.get_attribute("aria-describedby"))

    field.fill(code)
    page.get_by_test_id("support-continue").click()
    assert page.get_by_test_id("support-technician").inner_text() == "Tekniker"
    assert page.get_by_test_id("support-vendor").inner_text() == "Journalleverandør AS"
    assert page.get_by_test_id("support-customer").inner_text() == "Legekontoret Fjordbyen"
    page.screenshot(path=str(tmp_path / "joined-nb.png"))
    context.close()

    technician.goto(url + "/console")
    technician.get_by_test_id("support-row").get_by_role("link").click()
    assert technician.get_by_test_id("support-state").inner_text() == (
        "Brukeren har skrevet inn koden"
    )
