"""One time zone everywhere, named: the audit page showed UTC ("…Z") while the other pages
showed Oslo time. Now every page shows the configured zone (Europe/Oslo), the audit's
day filters are that zone's days, and the footer says which zone it is."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from fjernhjelp.audit.query import parse_filter
from fjernhjelp.i18n import Translator
from tests.portal.web import browser
from tests.portal.world import build_world

NB = Translator("nb")
EN = Translator("en")
OSLO = ZoneInfo("Europe/Oslo")


def test_the_audit_page_shows_oslo_time_and_names_it(client, db, state) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, state)
    with browser(client, world.gp_admin) as page:
        html = page.get("/portal/audit").text
        stamps = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', html)
        assert stamps, html[-2000:]
        for iso, shown in stamps:
            local = datetime.fromisoformat(iso).astimezone(OSLO)
            assert shown == local.strftime("%d.%m.%Y %H:%M:%S"), (iso, shown)
        assert f"{NB('audit.time')} ({NB('time.oslo')})" in html
        assert NB("time.shown_in", zone=NB("time.oslo")) in html  # the footer
        page.cookies.set("fjh_lang", "en")
        html = page.get("/portal/audit").text
        assert f"{EN('audit.time')} ({EN('time.oslo')})" in html
        assert EN("time.shown_in", zone=EN("time.oslo")) in page.get("/portal/machines").text


def test_the_audit_pages_day_filter_means_an_oslo_day() -> None:
    flt = parse_filter("2026-12-02", "2026-12-02", None, None, None, zone=OSLO)
    assert flt.since == datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    assert flt.until == datetime(2026, 12, 2, 23, 0, tzinfo=UTC)
    summer = parse_filter("2026-07-01", None, None, None, None, zone=OSLO)
    assert summer.since == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)
    # The API's days stay UTC days.
    assert parse_filter("2026-12-02", None, None, None, None).since == datetime(
        2026, 12, 2, tzinfo=UTC
    )
