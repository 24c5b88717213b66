"""Text that reaches the console without key events (input methods, on-screen keyboards,
Playwright's keyboard.type for æ, ø, å and –) arrives in a real application on the
machine: Playwright's insert_text produces input events and no keydown at all, as an
input method's commit does. Real server, agent, Xvfb, Tk application and Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from fjernhjelp.agent.display import DisplayTarget
from tests.desktop.xvfb import EntryApp, Xvfb
from tests.e2e.console_live import log_in, session_state, shown
from tests.e2e.test_console_desktop import _canvas_point
from tests.live.live import LiveSite
from tests.streams.desktop.test_novnc import type_norwegian
from tests.x11 import click

pytestmark = [
    pytest.mark.browser,
    pytest.mark.desktop,
    pytest.mark.slow,
    pytest.mark.one_backend(-1),
]

TEXT = "Ærlig talt, Øystein – 100 % på én dag?"


def test_text_without_key_events_reaches_the_application(
    page, site: LiveSite, screen: Xvfb, tmp_path: Path
) -> None:
    app = EntryApp(screen, tmp_path)
    display = DisplayTarget(display=screen.display)
    agent = site.agent("lege-pc-1", display=screen.display)
    agent.start()
    try:
        log_in(page, site)
        machine = site.wait_online(site.api_token(site.world.tech), {"lege-pc-1"})[0]
        assert site.server is not None
        page.goto(f"{site.server.url}/console/connect/{machine['id']}")
        session_state(page, "waiting-consent")
        click(display, *shown(agent, "consent dialog")["buttons"]["allow"])
        session_state(page, "connected")
        page.wait_for_selector("#desktop canvas", timeout=30_000)
        page.wait_for_selector("#desktop textarea.desktop-text-input", state="attached")

        page.mouse.click(*_canvas_point(page, *EntryApp.ENTRY))
        # Keys pressed (with key events) and text inserted (without) in one line.
        type_norwegian(page, "Blå ")
        page.keyboard.insert_text(TEXT)
        page.mouse.click(*_canvas_point(page, *EntryApp.BUTTON))
        assert app.wait_result() == "Blå " + TEXT
        # Nothing typed stays behind in the page's input element.
        assert page.input_value("#desktop textarea.desktop-text-input") == ""
        page.screenshot(path=str(tmp_path / "console-text-input.png"))
    finally:
        app.stop()
