"""The technician works in the browser on a real machine: consent on the end user's screen,
typing Norwegian text into a real application through noVNC, a view-only session whose
input changes nothing, and the end user ending the session. Real server, real agent,
real Xvfb with a Tk application, real Chromium; the relay sees only ciphertext."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fjernhjelp.agent.display import DisplayTarget
from fjernhjelp.portal.models import Permission
from tests.desktop.xvfb import EntryApp, Xvfb
from tests.e2e.console_live import log_in, session_state, shown
from tests.live.live import LiveSite
from tests.streams.desktop.test_novnc import type_norwegian
from tests.x11 import click, screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.desktop,
    pytest.mark.slow,
    pytest.mark.one_backend(0),
]

TEXT = "Blåbærsyltetøy"


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
        log_in(page, site)  # this step's code; the API token below takes the next one
        machine = site.wait_online(site.api_token(site.world.tech), {"lege-pc-1"})[0]
        assert site.server is not None

        # 1. Attended session with control: the end user allows, the technician types.
        page.goto(f"{site.server.url}/console/connect/{machine['id']}")
        session_state(page, "waiting-consent")
        dialog = shown(agent, "consent dialog")
        screenshot(display, tmp_path / "consent.png")
        click(display, *dialog["buttons"]["allow"])
        assert session_state(page, "connected")
        page.wait_for_selector("#desktop canvas", timeout=30_000)
        assert page.is_hidden("#view-only")
        page.mouse.click(*_canvas_point(page, *EntryApp.ENTRY))
        type_norwegian(page, TEXT)
        page.mouse.click(*_canvas_point(page, *EntryApp.BUTTON))
        assert app.wait_result() == TEXT
        page.screenshot(path=str(tmp_path / "console-session.png"))
        page.click("#end-session")
        session_state(page, "ended")
        site.wait_event("session.ended", contains="bytes_from_technician")

        # 2. The grant narrowed to viewing: the same clicks and keys change nothing.
        site.update_grant(frozenset({Permission.VIEW}), consent_required=True)
        app.result.unlink()
        keys_before = app.keys()
        page.goto(f"{site.server.url}/console/connect/{machine['id']}")
        session_state(page, "waiting-consent")
        click(display, *shown(agent, "consent dialog", after=1)["buttons"]["allow"])
        session_state(page, "connected")
        page.wait_for_selector("#desktop canvas", timeout=30_000)
        assert page.is_visible("#view-only")
        page.mouse.click(*_canvas_point(page, *EntryApp.ENTRY))
        page.keyboard.type("ikke lov", delay=40)
        page.mouse.click(*_canvas_point(page, *EntryApp.BUTTON))
        assert app.wait_result(timeout=3) is None  # the button was never pressed
        assert app.keys() == keys_before

        # 3. The end user presses "End session" in the indicator on their screen.
        indicator = shown(agent, "session indicator", after=1)
        screenshot(display, tmp_path / "indicator.png")
        click(display, *indicator["buttons"]["end_session"])
        session_state(page, "ended")
        # Earlier sessions left their own ended_at_agent events; wait for this one's.
        deadline = time.monotonic() + 30
        while not any(
            e.reason.startswith("ended_by_user") for e in site.events("session.ended_at_agent")
        ):
            assert time.monotonic() < deadline, "the agent never reported the user's ending"
            time.sleep(0.2)
    finally:
        app.stop()
