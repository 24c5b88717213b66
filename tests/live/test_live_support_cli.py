"""The technician's Support sessions from the command line, with real processes: the
server, ``fjernhjelp support-session …`` as the technician runs it, and for ``connect``
the end user's client (``fjernhjelp support CODE``) on an Xvfb display.

What the technician sees: the customers whose agreement allows Support, a code in
groups of three and a link, their sessions with state, a cancel; connecting waits for
the end user, shows the three check words to read aloud, then does what
``fjernhjelp connect`` does. And the refusals, each in one clear line: a customer whose
agreement covers Access only, a colleague's session."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fjernhjelp.agent.display import DisplayTarget
from fjernhjelp.caller import Caller
from fjernhjelp.portal import agreements, terms
from fjernhjelp.portal.agreements import AgreementSpec
from fjernhjelp.portal.models import AgreementKind, Organisation
from fjernhjelp.support.client import EXIT_ENDED
from fjernhjelp.tunnel import sas
from tests.helpers import Account, make_org, make_user
from tests.live.live import LiveSite, web
from tests.live.test_live_support import Client, _server_key
from tests.portal.world import build_world
from tests.x11 import click

pytestmark = [pytest.mark.slow]

CODE = re.compile(r"\b(\d{3} \d{3} \d{3})\b")
SESSION_ID = re.compile(r"^id: ([0-9a-f-]{36})$", re.M)


@pytest.fixture
def site(db, state, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:
    live = LiveSite(build_world(db, state), tmp_path, database_url)
    live.start_server()
    yield live
    live.stop()


def _access_only_customer(site: LiveSite) -> Organisation:
    """A dentist whose agreement with the world's vendor covers Access, not Support."""
    world = site.world
    dentist = make_org(world.db, "Tannlegen Nordkapp")
    admin = make_user(
        world.db, world.state, dentist, "tannlege-admin", admin=True, technician=False
    )
    world.db.commit()
    caller = Caller.of_person(admin.user, world.state.now(), "192.0.2.11")
    terms.accept(world.db, caller, "receiving")
    now = world.state.now()
    agreements.record(
        world.db,
        caller,
        AgreementSpec(
            vendor_org_id=world.vendor.id,
            kind=AgreementKind.REMOTE_SUPPORT.value,
            reference="Bare Access",
            valid_from=now.replace(year=now.year - 1),
            valid_until=None,
            covers="access",
        ),
    )
    world.db.commit()
    return dentist


def _colleague(site: LiveSite) -> Account:
    colleague = make_user(site.world.db, site.world.state, site.world.vendor, "kollega")
    site.world.db.commit()
    return colleague


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout


def _new(site: LiveSite) -> tuple[str, str]:
    """A Support session for the GP office, made at the command line: (id, code)."""
    made = site.cli("support-session", "new", site.world.gp.name)
    assert made.returncode == 0, made.stderr
    return SESSION_ID.findall(made.stdout)[0], CODE.findall(made.stdout)[0]


def test_a_technician_makes_lists_and_cancels_a_support_session(site: LiveSite) -> None:
    _access_only_customer(site)
    site.login(site.world.tech)

    offered = site.cli("support-session", "customers")
    assert offered.returncode == 0, offered.stderr
    assert site.world.gp.name in offered.stdout and "Tannlegen" not in offered.stdout

    made = site.cli("support-session", "new", site.world.gp.name)
    assert made.returncode == 0, made.stderr
    [code] = CODE.findall(made.stdout)
    [support_id] = SESSION_ID.findall(made.stdout)
    assert re.search(r"/s/\d{9}\b", made.stdout), made.stdout
    assert "groups of three" in made.stderr
    created = site.wait_event("support.code_created")
    assert json.loads(created.details)["session"] == support_id

    listed = site.cli("support-session", "list")
    assert listed.returncode == 0, listed.stderr
    assert support_id in listed.stdout and "Waiting for the user" in listed.stdout
    assert code not in listed.stdout  # the code is shown once, never listed

    cancelled = site.cli("support-session", "cancel", support_id[:8])
    assert cancelled.returncode == 0, cancelled.stderr
    assert "Cancelled" in cancelled.stdout
    assert site.wait_event("support.cancelled").outcome == "success"
    assert "Cancelled" in site.cli("support-session", "list").stdout

    # Cancelled once is cancelled: a second time is refused, in one line.
    again = site.cli("support-session", "cancel", support_id)
    assert again.returncode == 1 and "cannot be cancelled now" in again.stderr
    _no_traceback(again)


def test_support_for_a_customer_whose_agreement_covers_access_only_is_refused(
    site: LiveSite,
) -> None:
    dentist = _access_only_customer(site)
    site.login(site.world.tech)

    by_name = site.cli("support-session", "new", dentist.name)
    assert by_name.returncode == 1
    assert "no customer 'Tannlegen Nordkapp' among those whose agreement allows" in by_name.stderr
    _no_traceback(by_name)

    # By id the server decides, says why and writes it down.
    by_id = site.cli("support-session", "new", str(dentist.id))
    assert by_id.returncode == 1
    assert "no agreement in force for one-time sessions (Support)" in by_id.stderr
    assert "no_support_agreement" in by_id.stderr
    _no_traceback(by_id)
    refused = site.wait_event("support.requested", outcome="denied")
    assert refused.reason == "no_support_agreement"
    assert json.loads(refused.details)["customer"] == str(dentist.id)
    assert site.events("support.code_created") == []


def test_a_colleagues_support_session_cannot_be_cancelled_or_joined(site: LiveSite) -> None:
    colleague = _colleague(site)
    assert site.server is not None
    theirs = web.post(
        site.server.url + "/api/v1/support-sessions",
        json={"customer_org_id": str(site.world.gp.id)},
        headers={"Authorization": f"Bearer {site.api_token(colleague)}"},
    ).json()
    site.login(site.world.tech)

    listed = site.cli("support-session", "list")
    assert theirs["id"] not in listed.stdout

    by_prefix = site.cli("support-session", "cancel", theirs["id"][:8])
    assert by_prefix.returncode == 1
    assert "no Support session of yours with an id beginning" in by_prefix.stderr

    for args in (("cancel", theirs["id"]), ("connect", theirs["id"], "--chat")):
        result = site.cli("support-session", *args)
        assert result.returncode == 1, result.stdout
        assert "refused" in result.stderr and "no_such_support_session" in result.stderr
        _no_traceback(result)
    # Written down as "not found", as for an id that does not exist.
    assert site.wait_event("support.cancelled", outcome="denied").reason == "not_found"
    assert site.wait_event("support.tunnel_requested", outcome="denied").reason == "not_found"
    # Theirs still waits for its end user.
    still = web.get(
        site.server.url + "/api/v1/support-sessions",
        headers={"Authorization": f"Bearer {site.api_token(colleague)}"},
    ).json()
    assert [(s["id"], s["state"]) for s in still] == [(theirs["id"], "waiting")]


def _until_said(proc: subprocess.Popen[str], text: str, timeout: float = 120) -> str:
    """What ``proc`` wrote to its standard error up to the line that holds ``text``."""
    said: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            said.append(line)
            if text in line:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        proc.kill()
        raise AssertionError(f"never said {text!r}: {''.join(said)}")
    return "".join(said)


@pytest.mark.desktop
@pytest.mark.parametrize("what", ["put", "chat"])
def test_connect_waits_for_the_end_user_and_shows_the_check_words(
    site: LiveSite, xvfb: DisplayTarget, tmp_path: Path, what: str
) -> None:
    site.login(site.world.tech)
    support_id, code = _new(site)
    (tmp_path / "hjelp.txt").write_text("fra teknikeren\n")
    doing = (
        ["--put", str(tmp_path / "hjelp.txt"), "hjelp.txt"] if what == "put" else ["--chat"]
    )
    # The technician connects first and waits for the end user, as they would on the phone.
    technician = subprocess.Popen(
        [sys.executable, "-m", "fjernhjelp", "support-session", "connect", support_id[:8], *doing],
        env={**os.environ, "FJERNHJELP_CLI_HOME": str(site.cli_home)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The end user starts only once the technician waits (else, on a loaded machine, the
    # end user's code could be in before the technician's command had started at all).
    said_first = _until_said(technician, "waiting for the end user to enter the code")
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    client = Client(site, client_dir, code.replace(" ", ""), _server_key(site), xvfb.display)
    try:
        try:
            dialog = client.shown("consent dialog")
        except TimeoutError:
            technician.kill()
            raise AssertionError(technician.communicate()[1]) from None
        click(xvfb, *dialog["buttons"]["allow"])
        if what == "chat":
            assert technician.stdin is not None
            technician.stdin.write("Hei! Jeg ser på skjermen din nå.\n")
            technician.stdin.flush()
            client.shown("session chat")
        # communicate() closes standard input: the end of input ends the chat, and the session.
        _, stderr = technician.communicate(timeout=120)
        stderr = said_first + stderr
        assert technician.returncode == 0, stderr
        assert client.wait(60) == EXIT_ENDED, client.log.read_text()[-3000:]
    finally:
        if technician.poll() is None:
            technician.kill()
            technician.communicate()
        client.stop()
    assert "Traceback" not in stderr
    [said] = re.findall(r"Read these three words aloud to the user on the phone: ([^.]+)\.", stderr)
    words = said.split()
    assert len(words) == 3 and all(w in sas.word_list() for w in words)
    assert " ".join(words).upper() in stderr  # and large, in the panel above it
    assert re.search(r"As digits: \d{4} \d{4}", stderr), stderr
    assert "the end user allowed the session" in stderr
    site.wait_event("sas.shown")
    if what == "put":
        assert "copied to" in stderr
        site.wait_event("file.moved")
    else:
        assert json.loads(site.wait_event("chat.ended").details)["to_user"] == 1
