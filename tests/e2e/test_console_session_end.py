"""The console says why a session ended and nothing on the page acts on it afterwards: the
end user pressing "End session" in the indicator, then the customer's admin revoking the
grant while the technician is connected (the relay closes with 4003 "cut:grant_revoked").
Real server, agent, Xvfb and Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from fjernhjelp.agent.display import DisplayTarget
from fjernhjelp.i18n import Translator
from tests.desktop.xvfb import Xvfb
from tests.e2e.console_live import log_in, session_state, shown
from tests.live.live import LiveSite
from tests.x11 import click

pytestmark = [
    pytest.mark.browser,
    pytest.mark.desktop,
    pytest.mark.slow,
    pytest.mark.one_backend(-1),
]

NB = Translator("nb")


def _enabled_controls(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Every button, field and list in the session view that could still be used."""
    return page.eval_on_selector_all(
        "#session button, #session input, #session select, #session textarea",
        "els => els.filter(e => !e.disabled && !e.hidden && e.offsetParent !== null)"
        ".map(e => e.id || e.outerHTML.slice(0, 60))",
    )


def _connect(page, site: LiveSite, agent, display, machine_id: str, nth: int) -> None:  # type: ignore[no-untyped-def]
    assert site.server is not None
    page.goto(f"{site.server.url}/console/connect/{machine_id}")
    session_state(page, "waiting-consent")
    click(display, *shown(agent, "consent dialog", after=nth)["buttons"]["allow"])
    session_state(page, "connected")
    page.wait_for_selector("#desktop canvas", timeout=30_000)
    page.wait_for_selector("#chat-form:not([hidden])")
    assert "end-session" in _enabled_controls(page)  # the page could act before the end


def _chat_note(page) -> str:  # type: ignore[no-untyped-def]
    page.wait_for_selector("#chat-log li.note", timeout=30_000)
    return page.inner_text("#chat-log li.note")


def test_the_page_says_why_the_session_ended_and_disables_every_action(
    page, site: LiveSite, screen: Xvfb, tmp_path: Path
) -> None:
    display = DisplayTarget(display=screen.display)
    agent = site.agent("lege-pc-1", display=screen.display)
    agent.start()
    log_in(page, site)
    machine = site.wait_online(site.api_token(site.world.tech), {"lege-pc-1"})[0]

    # 1. The user at the machine ends the session in the indicator.
    _connect(page, site, agent, display, machine["id"], nth=0)
    click(display, *shown(agent, "session indicator")["buttons"]["end_session"])
    detail = session_state(page, "ended")
    assert detail == NB("session.close.ended_by_user")
    assert _enabled_controls(page) == []
    note = _chat_note(page)
    assert NB("session.close.ended_by_user") in note
    assert not re.search(r"\d|ended|cut:|closed \(", note), note  # a sentence, no codes
    page.screenshot(path=str(tmp_path / "ended-by-user.png"))

    # 2. The customer's admin revokes the grant while the technician is connected.
    _connect(page, site, agent, display, machine["id"], nth=1)
    assert site.server is not None
    r = httpx.post(
        f"{site.server.url}/api/v1/grants/{site.world.grant.id}/revoke",
        headers={"Authorization": f"Bearer {site.api_token(site.world.gp_admin)}"},
    )
    assert r.status_code == 200, r.text
    try:
        detail = session_state(page, "ended")
    except Exception as exc:
        shows = (page.get_attribute("#state", "data-state"), page.inner_text("#state-detail"))
        server_log = site.server.log.read_text()[-3000:]
        raise AssertionError(f"the page shows {shows} after the revocation:\n{server_log}") from exc
    assert detail == NB("session.cut.grant_revoked")
    assert page.get_attribute("#session", "data-cut") == "grant_revoked"
    assert _enabled_controls(page) == []
    note = _chat_note(page)
    assert NB("session.cut.grant_revoked") in note
    assert not re.search(r"\d|cut:|grant_revoked|closed \(", note), note
    page.screenshot(path=str(tmp_path / "revoked.png"))
    site.wait_event("session.ended", contains="bytes_from_technician", reason="cut:grant_revoked")

