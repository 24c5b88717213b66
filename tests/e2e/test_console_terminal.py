"""The console's terminal against a real agent on Xvfb, in Chromium: the panel asks the
agent which accounts it offers, opens the only one at once, lets the technician pick
where there are two, and shows a refusal as one sentence in the page's language."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from fjernhjelp.agent.display import DisplayTarget
from fjernhjelp.portal.models import Permission
from tests.desktop.xvfb import Xvfb, xvfb
from tests.e2e.console_live import FULL, log_in, session_state, shown
from tests.live.live import LiveSite
from tests.x11 import click

pytestmark = [
    pytest.mark.browser,
    pytest.mark.desktop,
    pytest.mark.slow,
    pytest.mark.one_backend(0),
]

NEEDS_ADMIN = (
    "Et skall som administrator krever tilgangen «Terminal som administrator», "
    "og den har ikke denne økten."
)


@pytest.fixture
def screen() -> Iterator[Xvfb]:
    with xvfb(1024, 768) as server:
        yield server


def _connect(page, site: LiveSite, agent, display: DisplayTarget, machine_id: str, n: int) -> None:  # type: ignore[no-untyped-def]
    assert site.server is not None
    page.goto(f"{site.server.url}/console/connect/{machine_id}")
    session_state(page, "waiting-consent")
    click(display, *shown(agent, "consent dialog", after=n)["buttons"]["allow"])
    session_state(page, "connected")


def _terminal_shows(page, text: str) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(
        "(t) => document.querySelector('#terminal .xterm-rows')?.textContent.includes(t)",
        arg=text,
        timeout=60_000,
    )


def _status(page, text: str) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(
        "(t) => document.getElementById('terminal-status').textContent === t",
        arg=text,
        timeout=60_000,
    )


def test_the_terminal_opens_with_what_the_agent_offers(
    page, site: LiveSite, screen: Xvfb, tmp_path: Path
) -> None:
    display = DisplayTarget(display=screen.display)
    socket = f"/tmp/.X11-unix/X{display.number}"
    agent = site.agent("lege-pc-1", display=screen.display)
    agent.start()
    log_in(page, site)
    machine = site.wait_online(site.api_token(site.world.tech), {"lege-pc-1"})[0]

    # The X server is root's, and this grant has no "terminal as administrator": the
    # agent has nothing to offer, and the page says why in one Norwegian sentence.
    _connect(page, site, agent, display, machine["id"], 0)
    page.click("#terminal-open")
    _status(page, NEEDS_ADMIN)
    assert page.is_hidden("#terminal-choose")
    assert page.locator("#terminal .xterm-rows").count() == 0

    # The display now belongs to an ordinary person: the one account offered opens at
    # once, with no question, as that person.
    nobody = pwd.getpwnam("nobody")
    os.chown(socket, nobody.pw_uid, -1)
    page.click("#terminal-open")
    _status(page, "Skallet kjører som nobody.")
    assert page.is_hidden("#terminal-choose")
    page.click("#terminal")
    page.keyboard.type("echo bruker-$(id -un)\n")
    _terminal_shows(page, "bruker-nobody")
    page.keyboard.type("exit 5\n")
    _status(page, "Skallet avsluttet med kode 5.")
    page.click("#end-session")
    session_state(page, "ended")

    # With "terminal as administrator" there are two accounts: the technician picks.
    site.update_grant(FULL | {Permission.TERMINAL_ADMIN}, consent_required=True)
    _connect(page, site, agent, display, machine["id"], 1)
    page.click("#terminal-open")
    page.wait_for_selector("#terminal-choose:not([hidden])")
    choices = page.locator("#terminal-choices label")
    assert choices.all_inner_texts() == [
        "nobody (brukeren ved maskinen)",
        "root (fjernhjelp-tjenesten, administrator)",
    ]
    assert page.is_checked("input[name=run_as][value=user]")  # the least is the default
    page.screenshot(path=str(tmp_path / "terminal-choose.png"))
    page.check("input[name=run_as][value=service]")
    page.click("#terminal-start")
    _status(page, "Skallet kjører som root.")
    page.click("#terminal")
    page.keyboard.type("echo uid-$(id -u)\n")
    _terminal_shows(page, "uid-0")
    page.keyboard.type("exit\n")
    _status(page, "Skallet avsluttet med kode 0.")
    site.wait_event("shell.ended", contains='"account":"root"')
    assert site.wait_event("shell.started", contains='"account":"nobody"')
