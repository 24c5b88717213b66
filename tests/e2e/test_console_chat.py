"""The technician chats with the person at the machine: the console's chat panel in real
Chromium, a real server and agent, the reply typed into the session indicator on a real
Xvfb. The audit log learns that a chat happened and how much was said, never what."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fjernhjelp.agent.display import DisplayTarget
from tests.desktop.xvfb import Xvfb
from tests.e2e.console_live import log_in, session_state, shown
from tests.live.live import LiveSite
from tests.x11 import click, screenshot, selected_text, type_text

pytestmark = [
    pytest.mark.browser,
    pytest.mark.desktop,
    pytest.mark.slow,
    pytest.mark.one_backend(-1),
]

QUESTION = "Hei, det er Kari fra Journalsystemer. Ser du denne meldingen?"
ANSWER = "Ja, jeg ser den. Skriveren på kontoret står på, æøå ÆØÅ"


def _window_shows(display: DisplayTarget, area: dict, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        seen = selected_text(display, area["chat_log_start"], area["chat_log_end"])
        if text in seen or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def test_technician_and_end_user_chat(page, site: LiveSite, screen: Xvfb, tmp_path: Path) -> None:
    display = DisplayTarget(display=screen.display)
    agent = site.agent("lege-pc-1", display=screen.display)
    agent.start()
    log_in(page, site)
    machine = site.wait_online(site.api_token(site.world.tech), {"lege-pc-1"})[0]
    assert site.server is not None

    page.goto(f"{site.server.url}/console/connect/{machine['id']}")
    session_state(page, "waiting-consent")
    click(display, *shown(agent, "consent dialog")["buttons"]["allow"])
    session_state(page, "connected")

    # The technician writes; the message appears in the window on the user's screen.
    page.fill("#chat-text", QUESTION)
    page.click("#chat-form button[type=submit]")
    area = {k: tuple(v) for k, v in shown(agent, "session chat")["buttons"].items()}
    on_screen = _window_shows(display, area, QUESTION)
    technician = json.loads(site.wait_event("session.started").details)["technician"]
    assert QUESTION in on_screen and technician in on_screen  # with who wrote it
    screenshot(display, tmp_path / "chat-user-screen.png")

    # The user answers there; the answer appears in the console.
    click(display, *area["chat_entry"])
    type_text(display, ANSWER)
    click(display, *area["chat_send"])
    try:
        page.wait_for_selector(f'#chat-log li.theirs:has-text("{ANSWER}")', timeout=30_000)
    except Exception as exc:
        entry = selected_text(display, area["chat_entry"], area["chat_send"])
        raise AssertionError(
            f"console shows {page.inner_text('#chat-log')!r}; entry holds {entry!r}"
        ) from exc
    page.screenshot(path=str(tmp_path / "console-chat.png"))

    page.click("#end-session")
    session_state(page, "ended")
    ended = json.loads(site.wait_event("chat.ended").details)
    assert (ended["to_user"], ended["from_user"]) == (1, 1)
    assert (ended["chars_to_user"], ended["chars_from_user"]) == (len(QUESTION), len(ANSWER))
    opened = [e for e in site.events("stream.opened") if '"service":"chat"' in e.details]
    assert len(opened) == 1
    # Nothing that was said is in the session's audit log.
    for action in ("chat.ended", "stream.opened", "session.started", "session.ended_at_agent"):
        for event in site.events(action):
            assert "Skriveren" not in event.details and "Ser du" not in event.details
