"""The technician works in the browser on a real machine: consent on the end user's screen,
typing Norwegian text into a real application through noVNC, a view-only session whose
input changes nothing, and the end user ending the session. Real server, real agent,
real Xvfb with a Tk application, real Chromium; the relay sees only ciphertext."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from fjernhjelp.agent.display import DisplayTarget
from fjernhjelp.portal import grants
from fjernhjelp.portal.grants import GrantTerms
from fjernhjelp.portal.models import Permission
from tests.access.live import AgentProcess, LiveSite
from tests.agent.conftest import click, screenshot
from tests.agent.desktop.test_novnc import type_norwegian
from tests.desktop.xvfb import EntryApp, Xvfb, xvfb
from tests.helpers import PASSWORD
from tests.portal.world import build_world

pytestmark = [pytest.mark.browser, pytest.mark.desktop, pytest.mark.slow]

TEXT = "Blåbærsyltetøy"
FULL = frozenset(
    {Permission.VIEW, Permission.CONTROL, Permission.TERMINAL, Permission.FILES, Permission.CHAT}
)


@pytest.fixture
def screen() -> Iterator[Xvfb]:
    with xvfb(1280, 800) as server:
        yield server


@pytest.fixture
def site(db, state, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:
    world = build_world(db, state, grant=False)
    world.grant = world.make_grant(permissions=FULL, consent_required=True)
    live = LiveSite(world, tmp_path, database_url)
    live.start_server()
    yield live
    live.stop()


def _shown(agent: AgentProcess, what: str, after: int = 0, timeout: float = 30) -> dict:
    pattern = re.compile(re.escape(what) + r" shown: (\{.*\})")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        matches = pattern.findall(agent.log.read_text())
        if len(matches) > after:
            return json.loads(matches[after])
        time.sleep(0.2)
    raise TimeoutError(f"{what} #{after + 1} never shown:\n{agent.log.read_text()[-3000:]}")


def _log_in(page, site: LiveSite) -> None:  # type: ignore[no-untyped-def]
    assert site.server is not None
    tech = site.world.tech
    page.goto(site.server.url + "/login")
    page.fill("input[name=username]", tech.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/login/factor**")
    assert tech.totp_secret
    page.fill("input[name=code]", pyotp.TOTP(tech.totp_secret).now())
    page.click("button[type=submit]")
    page.wait_for_url("**/console")


def _state(page, wanted: str) -> str:  # type: ignore[no-untyped-def]
    page.wait_for_selector(f'#state[data-state="{wanted}"]', timeout=60_000)
    return page.inner_text("#state-detail")


def _canvas_point(page, x: int, y: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    canvas = page.locator("#desktop canvas")
    box = canvas.bounding_box()
    width = int(canvas.get_attribute("width"))
    scale = box["width"] / width
    return box["x"] + x * scale, box["y"] + y * scale


def test_technician_types_into_a_real_application_then_view_only_then_user_ends(
    page, site: LiveSite, screen: Xvfb, tmp_path: Path
) -> None:
    app = EntryApp(screen, tmp_path)
    display = DisplayTarget(display=screen.display)
    agent = site.agent("lege-pc-1", display=screen.display)
    agent.start()
    try:
        _log_in(page, site)  # this step's code; the API token below takes the next one
        machine = site.wait_online(site.api_token(site.world.tech), {"lege-pc-1"})[0]
        assert site.server is not None

        # 1. Attended session with control: the end user allows, the technician types.
        page.goto(f"{site.server.url}/console/connect/{machine['id']}")
        _state(page, "waiting-consent")
        dialog = _shown(agent, "consent dialog")
        screenshot(display, tmp_path / "consent.png")
        click(display, *dialog["buttons"]["allow"])
        assert _state(page, "connected")
        page.wait_for_selector("#desktop canvas", timeout=30_000)
        assert page.is_hidden("#view-only")
        page.mouse.click(*_canvas_point(page, *EntryApp.ENTRY))
        type_norwegian(page, TEXT)
        page.mouse.click(*_canvas_point(page, *EntryApp.BUTTON))
        assert app.wait_result() == TEXT
        page.screenshot(path=str(tmp_path / "console-session.png"))
        page.click("#end-session")
        _state(page, "ended")
        site.wait_event("session.ended", contains="bytes_from_technician")

        # 2. The grant narrowed to viewing: the same clicks and keys change nothing.
        site.world.db.rollback()  # a fresh snapshot before writing (SQLite)
        grants.update(
            site.world.db,
            site.world.caller(site.world.gp_admin),
            site.world.grant.id,
            GrantTerms(permissions=frozenset({Permission.VIEW}), consent_required=True),
        )
        site.world.db.commit()
        app.result.unlink()
        keys_before = app.keys()
        page.goto(f"{site.server.url}/console/connect/{machine['id']}")
        _state(page, "waiting-consent")
        click(display, *_shown(agent, "consent dialog", after=1)["buttons"]["allow"])
        _state(page, "connected")
        page.wait_for_selector("#desktop canvas", timeout=30_000)
        assert page.is_visible("#view-only")
        page.mouse.click(*_canvas_point(page, *EntryApp.ENTRY))
        page.keyboard.type("ikke lov", delay=40)
        page.mouse.click(*_canvas_point(page, *EntryApp.BUTTON))
        assert app.wait_result(timeout=3) is None  # the button was never pressed
        assert app.keys() == keys_before

        # 3. The end user presses "End session" in the indicator on their screen.
        indicator = _shown(agent, "session indicator", after=1)
        screenshot(display, tmp_path / "indicator.png")
        click(display, *indicator["buttons"]["end_session"])
        _state(page, "ended")
        # Earlier sessions left their own ended_at_agent events; wait for this one's.
        deadline = time.monotonic() + 30
        while not any(
            e.reason.startswith("ended_by_user") for e in site.events("session.ended_at_agent")
        ):
            assert time.monotonic() < deadline, "the agent never reported the user's ending"
            time.sleep(0.2)
    finally:
        app.stop()
