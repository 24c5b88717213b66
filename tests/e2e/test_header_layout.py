"""The page header stays one row at 1280×800, in bokmål and English, for every kind of
account (the operator and the admins see the most links): measured in Chromium, with a
screenshot of each page left in the test's directory for a person to look at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from tests.helpers import PASSWORD, Account
from tests.live.live import LiveSite
from tests.portal.world import build_world

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.one_backend(-1)]

# Every item in the header: its top and bottom, and the header's line height.
MEASURE = """() => {
  const header = document.querySelector("header.top");
  const items = [...header.querySelectorAll("a, button, span.who")]
    .filter((e) => e.offsetParent !== null)
    .map((e) => e.getBoundingClientRect());
  return {
    top: Math.min(...items.map((r) => r.top)),
    bottom: Math.max(...items.map((r) => r.bottom)),
    line: parseFloat(getComputedStyle(header).lineHeight),
    overflow: header.scrollWidth > header.clientWidth,
    height: header.getBoundingClientRect().height,
  };
}"""


@pytest.fixture
def site(db, state, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:
    world = build_world(db, state)
    live = LiveSite(world, tmp_path, database_url)
    live.start_server()
    try:
        yield live
    finally:
        live.stop()


def _log_in(page, site: LiveSite, account: Account) -> None:  # type: ignore[no-untyped-def]
    assert site.server is not None
    page.goto(site.server.url + "/login")
    page.fill("input[name=username]", account.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/login/factor**")
    assert account.totp_secret
    page.fill("input[name=code]", pyotp.TOTP(account.totp_secret).now())
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def test_the_header_is_one_row_at_1280_in_both_languages(
    browser, site: LiveSite, tmp_path: Path
) -> None:
    assert site.server is not None
    pages = [("operator", "/portal"), ("gp_admin", "/portal"), ("vendor_admin", "/portal")]
    pages.append(("tech", "/console"))
    for who, path in pages:
        context = browser.new_context(locale="nb-NO", viewport={"width": 1280, "height": 800})
        page = context.new_page()
        try:
            _log_in(page, site, getattr(site.world, who))
            for lang in ("nb", "en"):
                page.goto(f"{site.server.url}/lang/{lang}?next={path}")
                page.wait_for_selector(f'html[lang="{lang}"]')
                page.screenshot(path=str(tmp_path / f"header-{who}-{lang}.png"))
                box = page.evaluate(MEASURE)
                assert not box["overflow"], (who, lang, box)
                assert box["bottom"] - box["top"] < 1.6 * box["line"], (who, lang, box)
        finally:
            context.close()
