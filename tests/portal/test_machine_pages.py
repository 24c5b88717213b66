"""Machines and their session history: the customer admin's list (online state from the
cluster, last seen), one machine's sessions on the page and in the JSON API, and the
denied side: another customer's admin, another vendor's technician, a vendor admin, all
answered as if the machine did not exist."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from fjernhjelp.i18n import Translator
from tests.portal.access_world import Site, build_site
from tests.portal.web import Api, browser

NB = Translator("nb")
EN = Translator("en")


@pytest.fixture
def site(db, state) -> Site:
    return build_site(db, state)


def _online(client, machine_id: uuid.UUID) -> None:  # type: ignore[no-untyped-def]
    # On a thread of its own: a browser test in the same worker leaves Playwright's loop
    # marked as running on the main thread (see tests/conftest.py).
    mark = client.app.state.access.cluster.mark_online(str(machine_id))
    thread = threading.Thread(target=asyncio.run, args=(mark,))
    thread.start()
    thread.join()


def test_the_admin_sees_its_machines_offline_with_last_seen_then_online(client, site: Site) -> None:
    w = site.world
    machine = site.machine()
    elsewhere = site.machine("tann-pc", group=site.dentist_group)
    with browser(client, w.gp_admin) as page:
        html = page.get("/portal/machines").text
        assert "lege-pc-01" in html and "tann-pc" not in html
        for text in ("Debian GNU/Linux 13", "kari, ola", "0.9.1", w.group.name):
            assert text in html
        assert NB("session.machines.offline") in html
        assert NB("session.machines.last_seen", when="")[:8] in html
        assert f'href="/portal/machines/{machine.id}"' in html
        _online(client, machine.id)
        html = page.get("/portal/machines").text
        assert NB("session.machines.online") in html
        page.cookies.set("fjh_lang", "en")
        html = page.get(f"/portal/machines/{machine.id}").text
        assert EN("session.machines.online") in html and EN("machine.no_sessions") in html
    with browser(client, site.dentist_admin) as page:
        html = page.get("/portal/machines").text
        assert "tann-pc" in html and "lege-pc-01" not in html
        assert page.get(f"/portal/machines/{elsewhere.id}").status_code == 200


def test_the_machine_list_is_for_admins(client, site: Site) -> None:
    with browser(client, site.world.tech) as page:
        assert page.get("/portal/machines").status_code == 403


def test_the_history_shows_who_when_what_consent_end_and_bytes(client, site: Site) -> None:
    w = site.world
    machine = site.machine()
    first = site.session(machine, w.tech, consent="consent.given", seconds=65, ended_by_user=True)
    second = site.session(machine, site.rival_tech, consent="consent.denied", seconds=3)
    with browser(client, w.gp_admin) as page:
        html = page.get(f"/portal/machines/{machine.id}").text
    assert html.count('data-testid="session"') == 2
    assert html.index(str(second.id)) < html.index(str(first.id))  # newest first
    for text in (
        "Tekniker",  # display name of "tekniker"
        w.vendor.name,
        "Rival-Tech",
        "Konkurrent AS",
        "0:01:05",
        "0:00:03",
        NB("machine.consent_was.given"),
        NB("machine.consent_was.denied"),
        NB("machine.ended_by_who.user"),
        "ended_by_user:button",
        NB("machine.ended_by_who.technician"),
        NB("permission.view"),
        NB("permission.control"),
        NB("machine.bytes_each_way", sent="4.0 KiB", received="3.0 MiB"),
        NB("machine.history_all"),
    ):
        assert text in html, text


def test_the_history_api_for_the_customer_and_each_vendor(client, site: Site) -> None:
    w = site.world
    machine = site.machine()
    ours = site.session(machine, w.tech, ended_by_user=True)
    theirs = site.session(machine, site.rival_tech, consent=None, relay_reason="cut:grant_revoked")
    path = f"/machines/{machine.id}/sessions"

    rows = Api(client, w.gp_admin).get(path).json()
    assert [r["id"] for r in rows] == [str(theirs.id), str(ours.id)]
    mine = rows[1]
    assert mine["technician_username"] == "tekniker"
    assert mine["vendor"] == {"id": str(w.vendor.id), "name": w.vendor.name}
    assert mine["consent"] == "given" and mine["consent_required"] is True
    assert mine["ended_by"] == "user" and mine["ended_at_agent"] == "ended_by_user:button"
    assert mine["duration_seconds"] == 65
    assert (mine["bytes_from_technician"], mine["bytes_from_agent"]) == (4096, 3 * 1024 * 1024)
    assert mine["permissions"] == ["chat", "control", "view"]
    assert rows[0]["consent"] == "unanswered" and rows[0]["ended_by"] == "revoked"

    # Each vendor's technician sees its own vendor's sessions only.
    assert [r["id"] for r in Api(client, w.tech).get(path).json()] == [str(ours.id)]
    assert [r["id"] for r in Api(client, site.rival_tech).get(path).json()] == [str(theirs.id)]


@pytest.mark.parametrize("who", ["dentist_admin", "stranger_tech", "vendor_admin", "operator"])
def test_the_history_of_a_machine_one_may_not_see_is_a_404(client, site: Site, who) -> None:
    w = site.world
    machine = site.machine()
    site.session(machine, w.tech)
    account = getattr(site, who, None) or getattr(w, who)
    api = Api(client, account)
    foreign = api.get(f"/machines/{machine.id}/sessions")
    missing = api.get(f"/machines/{uuid.uuid4()}/sessions")
    assert foreign.status_code == 404
    # The problem's "instance" is the path asked for, so it names the id; the rest is equal.
    said = [{k: v for k, v in r.json().items() if k != "instance"} for r in (foreign, missing)]
    assert said[0] == said[1]
    with browser(client, account) as page:
        r = page.get(f"/portal/machines/{machine.id}")
        assert r.status_code == 404
        assert "lege-pc-01" not in r.text


def test_a_technician_whose_grant_ended_still_reads_its_own_past_sessions(
    client, site: Site
) -> None:
    from fjernhjelp.portal import grants

    w = site.world
    machine = site.machine()
    session = site.session(machine, w.tech)
    grants.revoke(w.db, w.caller(w.gp_admin), w.grant.id)
    w.db.commit()
    rows = Api(client, w.tech).get(f"/machines/{machine.id}/sessions").json()
    assert [r["id"] for r in rows] == [str(session.id)]
    # ... but the machine is no longer in its console list.
    assert Api(client, w.tech).get("/machines").json() == []


def test_the_console_links_each_machine_to_its_history(client, site: Site) -> None:
    machine = site.machine()
    with browser(client, site.world.tech) as page:
        html = page.get("/console").text
        assert f'data-history="{NB("session.machines.history")}"' in html
        r = page.get(f"/portal/machines/{machine.id}")
        assert r.status_code == 200
        assert NB("machine.history_own") in r.text
        assert 'href="/console"' in r.text


def test_a_long_history_comes_in_pages_that_miss_and_repeat_nothing(client, site: Site) -> None:
    w = site.world
    machine = site.machine()
    # seconds=0: the clock stands still, so all five share one request time, the case
    # where a cursor of time alone would skip or repeat rows.
    made = [site.session(machine, w.tech, seconds=0) for _ in range(5)]
    api = Api(client, w.gp_admin)
    seen: list[str] = []
    path = f"/machines/{machine.id}/sessions?limit=2"
    pages = 0
    while path:
        r = api.get(path)
        assert r.status_code == 200, r.text
        seen += [row["id"] for row in r.json()]
        pages += 1
        link = r.headers.get("Link")
        path = link[link.index("/api/v1") + len("/api/v1") : link.index(">")] if link else ""
    assert pages == 3
    assert sorted(seen) == sorted(str(s.id) for s in made) and len(set(seen)) == 5
    assert seen == [row["id"] for row in api.get(f"/machines/{machine.id}/sessions").json()]


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=501", "cursor=yesterday", "cursor=2026-11-29T10:00:00_nothex"]
)
def test_a_bad_page_request_is_refused_and_says_why(client, site: Site, query: str) -> None:
    machine = site.machine()
    site.session(machine, site.world.tech)
    r = Api(client, site.world.gp_admin).get(f"/machines/{machine.id}/sessions?{query}")
    assert r.status_code == 422
    assert "cursor" in r.text or "limit" in r.text


def test_a_cursor_does_not_open_another_vendors_sessions(client, site: Site) -> None:
    w = site.world
    machine = site.machine()
    for _ in range(3):
        site.session(machine, w.tech, seconds=1)
    first = Api(client, w.gp_admin).get(f"/machines/{machine.id}/sessions?limit=1")
    link = first.headers["Link"]
    cursor_query = link[link.index("?") : link.index(">")]
    rival = Api(client, site.rival_tech).get(f"/machines/{machine.id}/sessions{cursor_query}")
    assert rival.status_code == 200 and rival.json() == []
    stranger = Api(client, site.stranger_tech).get(f"/machines/{machine.id}/sessions{cursor_query}")
    assert stranger.status_code == 404


def test_the_machine_page_links_to_older_sessions(client, site: Site, monkeypatch) -> None:
    from fjernhjelp.server.pages import portal_machines

    monkeypatch.setattr(portal_machines, "PAGE_ROWS", 2)
    w = site.world
    machine = site.machine()
    made = [site.session(machine, w.tech, seconds=1) for _ in range(3)]
    with browser(client, w.gp_admin) as page:
        html = page.get(f"/portal/machines/{machine.id}").text
        assert html.count('data-testid="session"') == 2 and NB("machine.older_sessions") in html
        assert str(made[0].id) not in html
        older = html.split('data-testid="sessions-older"')[0].rsplit('href="', 1)[1].split('"')[0]
        assert older.startswith("?cursor=")  # relative: a proxy's scheme and host stay
        html = page.get(f"/portal/machines/{machine.id}{older.replace('&amp;', '&')}").text
        assert html.count('data-testid="session"') == 1 and str(made[0].id) in html
        assert NB("machine.older_sessions") not in html and NB("machine.newest_sessions") in html
        assert page.get(f"/portal/machines/{machine.id}?cursor=bad").status_code == 404
