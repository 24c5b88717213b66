"""The console's files panel against a real agent: a folder as the destination takes the
file under its own name, and a file already there is replaced only after the technician
says so in the page's own dialog, in Norwegian and in English. Real server, real agent,
real Chromium."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.console_live import log_in, session_state
from tests.live.conftest import FULL
from tests.live.live import LiveSite
from tests.portal.world import CLAUSE, build_world

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.one_backend(0)]


@pytest.fixture
def site(db, state, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:
    """A pre-approved grant (nobody needs to be at the screen) that includes files."""
    world = build_world(db, state, agreement=False)
    world.agreement = world.record_agreement(allows_preapproved=True, preapproved_clause=CLAUSE)
    world.grant = world.make_grant(permissions=FULL, consent_required=False)
    live = LiveSite(world, tmp_path, database_url)
    live.start_server()
    yield live
    live.stop()


def _upload(page, name: str, data: bytes, to: str) -> None:  # type: ignore[no-untyped-def]
    page.set_input_files("#upload-file", {"name": name, "mimeType": "text/plain", "buffer": data})
    page.fill("#upload-path", to)
    page.click("#upload-form button[type=submit]")


def _status(page, contains: str) -> str:  # type: ignore[no-untyped-def]
    # A locator, not wait_for_function: the page's CSP forbids evaluating strings.
    page.locator("#files-status", has_text=contains).wait_for(timeout=60_000)
    return page.inner_text("#files-status")


def test_upload_into_a_folder_and_the_overwrite_question(
    page, site: LiveSite, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    (share / "Dokumenter").mkdir(parents=True)
    site.agent("lege-pc-1", file_roots=[share], display="none").start()
    log_in(page, site)
    machine = site.wait_online(site.api_token(site.world.tech), {"lege-pc-1"})[0]
    assert site.server is not None
    page.goto(f"{site.server.url}/console/connect/{machine['id']}")
    session_state(page, "connected")
    placed = share / "Dokumenter" / "resept.txt"

    # A folder: the file goes in under its own name.
    _upload(page, "resept.txt", b"Ibux 400 mg\n", "Dokumenter")
    assert str(placed) in _status(page, "lastet opp")
    assert placed.read_bytes() == b"Ibux 400 mg\n"

    # The same name again: the page asks, and "Ikke erstatt" leaves the file alone.
    _upload(page, "resept.txt", b"Paracet 500 mg\n", "Dokumenter")
    dialog = page.locator("#overwrite-dialog")
    dialog.wait_for(state="visible")
    question = page.inner_text("#overwrite-question")
    assert question == f"{placed} finnes allerede på maskinen. Vil du erstatte filen?"
    page.click("#overwrite-dialog button[value=keep]")
    assert _status(page, "ble ikke erstattet") == (
        f"{placed} ble ikke erstattet, og ingenting ble lastet opp."
    )
    assert dialog.is_hidden() and placed.read_bytes() == b"Ibux 400 mg\n"

    # Escape is a no too.
    _upload(page, "resept.txt", b"Paracet 500 mg\n", "Dokumenter/resept.txt")
    dialog.wait_for(state="visible")
    page.keyboard.press("Escape")
    _status(page, "ble ikke erstattet")
    assert placed.read_bytes() == b"Ibux 400 mg\n"

    # In English, and this time replaced.
    page.goto(f"{site.server.url}/lang/en?next=/console/connect/{machine['id']}")
    session_state(page, "connected")
    _upload(page, "resept.txt", b"Paracet 500 mg\n", "Dokumenter")
    dialog.wait_for(state="visible")
    assert page.inner_text("#overwrite-question") == (
        f"{placed} already exists on the machine. Do you want to replace it?"
    )
    assert page.inner_text("#overwrite-replace") == "Replace"
    page.click("#overwrite-replace")
    assert str(placed) in _status(page, "has been uploaded")
    assert placed.read_bytes() == b"Paracet 500 mg\n"

    # The agent reports a move after it confirms it to the page: wait for the last one.
    site.wait_event("file.moved", contains=hashlib.sha256(b"Paracet 500 mg\n").hexdigest())
    moved = [e for e in site.events("file.moved") if "resept.txt" in (e.details or "")]
    assert len(moved) == 2  # the first upload and the confirmed one; never the refused
    refused = site.wait_event("stream.refused", contains='"op":"put"')
    assert refused.reason == "exists"
