"""The one-time client's download: only for the browser that joined with the code, stamped
for this server (support/stamp.py), audited either way, stamped once and then reused.

A small stand-in replaces the ~47 MB PyInstaller build: the stamp works on any bytes."""

from __future__ import annotations

import io
import os
import re
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fjernhjelp.auth.tokens import token_hash
from fjernhjelp.control.package import fingerprint
from fjernhjelp.remote import support, support_download
from fjernhjelp.remote.models import SessionStatus
from fjernhjelp.support.build import target_name
from fjernhjelp.support.handover import read_handover
from fjernhjelp.support.stamp import read_stamp
from tests.helpers import csrf_from
from tests.portal.web import browser
from tests.portal.world import World
from tests.support.kit import details, events, make_code, row

STAND_IN = b"#!/bin/sh\necho 'the one-time client stands in here'\n"


@pytest.fixture
def dist(world: World, tmp_path: Path) -> Path:
    folder = tmp_path / "dist"
    folder.mkdir()
    world.state.settings.support_client_dir = folder
    (folder / target_name()).write_bytes(STAND_IN)
    return folder


def _anonymous(client: TestClient) -> TestClient:
    return TestClient(client.app, base_url="http://testserver", follow_redirects=False)


def _join(page: TestClient, code: str):  # type: ignore[no-untyped-def]
    form = page.get("/")
    r = page.post("/s", data={"code": code, "csrf_token": csrf_from(form.text)})
    assert r.status_code == 200, r.text
    return r


def _downloads(world: World) -> list:  # type: ignore[type-arg]
    return events(world.db, "support.client_downloaded")


def test_after_joining_the_client_downloads_stamped_for_this_server(
    client, world: World, dist: Path, tmp_path: Path
) -> None:
    created = make_code(world)
    server_fingerprint = fingerprint(world.state.keys.signing.public_key())
    with _anonymous(client) as end_user:
        page = _join(end_user, created.code)
        link = f"/s/{created.session.id}/client"
        assert f'href="{link}"' in page.text
        shown = re.search(
            r'data-testid="support-client-fingerprint">.*?<code>([^<]+)</code>', page.text, re.S
        )
        assert shown is not None and shown.group(1) == server_fingerprint
        assert "support-client-unavailable" not in page.text
        cookie = page.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        r = end_user.get(link)
    assert r.status_code == 200
    assert r.headers["content-disposition"] == 'attachment; filename="fjernhjelp-support"'
    assert r.headers["content-type"] == "application/octet-stream"
    saved = tmp_path / "downloaded"
    saved.write_bytes(r.content)
    found = read_stamp(saved)
    assert found.server_url == world.state.settings.effective_public_url
    assert found.fingerprint == server_fingerprint
    assert r.content.startswith(STAND_IN)
    # The session the end user joined in this browser, so the client needs no code.
    with saved.open("rb") as fh:
        _, handover = read_handover(fh)
    assert handover is not None and handover.session_id == created.session.id
    assert (handover.vendor, handover.customer) == (world.vendor.name, world.gp.name)
    # The browser's own end-user token (the cookie's), which opens the control link.
    joined = row(world.db, created.session.id)
    assert token_hash(handover.client_token) == joined.end_user_token_hash
    [event] = _downloads(world)
    assert (event.outcome, event.actor_name, event.source_address) == (
        "success",
        "end-user",
        "testclient",
    )
    assert (event.customer_org_id, event.vendor_org_id) == (world.gp.id, world.vendor.id)
    assert details(event)["session"] == str(created.session.id)


def _stamped_part(content: bytes) -> bytes:
    with io.BytesIO(content) as fh:
        end, _ = read_handover(fh)
    return content[:end]


def test_without_joining_in_this_browser_there_is_no_client(
    client, world: World, dist: Path
) -> None:
    created = make_code(world)
    with _anonymous(client) as end_user:
        _join(end_user, created.code)
    link = f"/s/{created.session.id}/client"
    with _anonymous(client) as stranger:
        # Knowing the session's id is not enough: the token is in the joiner's cookie.
        r = stranger.get(link)
        assert r.status_code == 404 and STAND_IN not in r.content
        # A made-up token does no better.
        stranger.cookies.set(support_download.client_cookie(created.session.id), "guessed")
        assert stranger.get(link).status_code == 404
        # Nor an id that is no session at all.
        assert stranger.get(f"/s/{uuid.uuid4()}/client").status_code == 404
    refused = _downloads(world)
    assert [(e.outcome, e.reason) for e in refused] == [
        ("denied", "not_joined"),
        ("denied", "not_joined"),
        ("denied", "unknown"),
    ]
    # A real session's refusals are for its customer and vendor to read; the made-up
    # id's belong to nobody.
    assert refused[0].customer_org_id == world.gp.id and refused[0].vendor_org_id == world.vendor.id
    assert refused[2].customer_org_id is None and refused[2].vendor_org_id is None


def test_a_cancelled_or_ended_session_has_no_client(client, world: World, dist: Path) -> None:
    cancelled, ended = make_code(world), make_code(world)
    with _anonymous(client) as end_user:
        _join(end_user, cancelled.code)
        _join(end_user, ended.code)
        support.cancel(world.db, world.caller(world.tech), cancelled.session.id)
        world.db.commit()
        finished = row(world.db, ended.session.id)
        finished.status, finished.end_reason = SessionStatus.ENDED, "technician_closed"
        finished.ended_at = world.state.now()
        world.db.commit()
        assert end_user.get(f"/s/{cancelled.session.id}/client").status_code == 404
        assert end_user.get(f"/s/{ended.session.id}/client").status_code == 404
    assert [(e.outcome, e.reason) for e in _downloads(world)] == [
        ("denied", "cancelled"),
        ("denied", "ended"),
    ]


def test_the_download_ends_with_the_codes_lifetime_after_joining(
    client, world: World, dist: Path, clock
) -> None:  # type: ignore[no-untyped-def]
    created = make_code(world)
    with _anonymous(client) as end_user:
        _join(end_user, created.code)
        clock.advance(minutes=world.state.settings.support_code_minutes, seconds=1)
        r = end_user.get(f"/s/{created.session.id}/client")
    assert r.status_code == 404
    assert [(e.outcome, e.reason) for e in _downloads(world)] == [("denied", "expired")]


def test_the_stamped_file_is_made_once_and_reused(
    client, world: World, dist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamped: list[int] = []
    real_stamp = support_download.stamp

    def counting(binary: bytes, *args, **kwargs) -> bytes:  # type: ignore[no-untyped-def]
        stamped.append(len(binary))
        return real_stamp(binary, *args, **kwargs)

    monkeypatch.setattr(support_download, "stamp", counting)
    first, second = make_code(world), make_code(world)
    with _anonymous(client) as one, _anonymous(client) as two:
        _join(one, first.code)
        _join(two, second.code)
        a = one.get(f"/s/{first.session.id}/client")
        b = two.get(f"/s/{second.session.id}/client")
        c = one.get(f"/s/{first.session.id}/client")
    assert a.status_code == b.status_code == c.status_code == 200
    # The stamped client is the same for every session; only the session block differs.
    assert a.content == c.content
    assert _stamped_part(a.content) == _stamped_part(b.content)
    assert _stamped_part(a.content) != a.content and a.content != b.content
    assert stamped == [len(STAND_IN)]
    cache = world.state.settings.data_dir / "support-client"
    [cached] = list(cache.iterdir())
    assert cached.stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700

    # A new build is stamped afresh, and the old stamped file goes.
    generic = dist / target_name()
    generic.write_bytes(STAND_IN + b"# rebuilt\n")
    later = generic.stat().st_mtime_ns + 1_000_000_000
    os.utime(generic, ns=(later, later))
    with _anonymous(client) as three:
        third = make_code(world)
        _join(three, third.code)
        r = three.get(f"/s/{third.session.id}/client")
    assert r.status_code == 200 and b"# rebuilt" in r.content
    assert stamped == [len(STAND_IN), len(STAND_IN) + len(b"# rebuilt\n")]
    assert [p.name for p in cache.iterdir()] != [cached.name] and len(list(cache.iterdir())) == 1


def test_without_a_build_the_page_says_so_and_offers_no_link(
    client, world: World, tmp_path: Path
) -> None:
    world.state.settings.support_client_dir = tmp_path / "nothing-built"
    created = make_code(world)
    with _anonymous(client) as end_user:
        page = _join(end_user, created.code)
        assert 'data-testid="support-client-unavailable"' in page.text
        assert "make support-client" in page.text
        assert "/client" not in page.text
        r = end_user.get(f"/s/{created.session.id}/client")
    assert r.status_code == 503
    assert [(e.outcome, e.reason) for e in _downloads(world)] == [("denied", "unavailable")]


def test_staff_signed_in_get_no_client_either(client, world: World, dist: Path) -> None:
    """The technician who made the session is not its end user: no cookie, no client."""
    created = make_code(world)
    with _anonymous(client) as end_user:
        _join(end_user, created.code)
    with browser(client, world.tech) as tech:
        assert tech.get(f"/s/{created.session.id}/client").status_code == 404
