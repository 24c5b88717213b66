"""Chat with the person at the machine: a real tunnel, the agent's own stream handling
(Session), and the session indicator window on a real Xvfb, read and typed into with
xdotool and the X selection."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from fjernhjelp.agent.config import AgentConfig
from fjernhjelp.agent.display import DisplayTarget, ShownWindow
from fjernhjelp.agent.identity import AgentIdentity
from fjernhjelp.agent.indicator import SessionIndicator
from fjernhjelp.agent.remote_session import AgentSessions, Session
from fjernhjelp.control.messages import Dial, SessionEvent
from fjernhjelp.streams.chat.wire import MAX_TEXT, ChatRefusal, parse_message
from fjernhjelp.tunnel import ChannelClosed
from fjernhjelp.tunnel.codes import StreamCode
from fjernhjelp.tunnel.errors import StreamRefused
from fjernhjelp.tunnel.handshake import raw_public
from fjernhjelp.tunnel.mux import Tunnel
from fjernhjelp.tunnel.tickets import Permission
from tests.tunnel.helpers import Pair, World, open_pair
from tests.x11 import click, screenshot, selected_text, type_text

WITH_CHAT = frozenset({Permission.VIEW, Permission.CHAT})
QUESTION = "Hei! Kan du trykke på «Start» og si hva du ser? 🙂"
ANSWER = "Jeg ser et vindu med teksten Blåbærsyltetøy, ÆØÅ"


@dataclass
class Agent:
    """The technician's end of a real tunnel, and the agent's Session serving the other."""

    pair: Pair
    session: Session
    reports: list[SessionEvent]
    indicator: SessionIndicator | None
    changed: asyncio.Event  # a report came in, or the chat area appeared

    def actions(self, action: str) -> list[SessionEvent]:
        return [r for r in self.reports if r.action == action]

    async def reported(self, action: str, count: int = 1) -> list[SessionEvent]:
        async with asyncio.timeout(30):
            while len(self.actions(action)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.actions(action)

    async def chat_area(self) -> dict[str, tuple[int, int]]:
        assert self.indicator is not None
        async with asyncio.timeout(30):
            while self.indicator.chat_shown is None:
                self.changed.clear()
                await self.changed.wait()
        return self.indicator.chat_shown.buttons


@asynccontextmanager
async def agent_session(
    tmp_path: Path, display: DisplayTarget | None, permissions: frozenset[Permission]
) -> AsyncIterator[Agent]:
    world = World()
    reports: list[SessionEvent] = []
    changed = asyncio.Event()

    def report(event: SessionEvent) -> None:
        reports.append(event)
        changed.set()

    config = AgentConfig(
        server_url="https://fjernhjelp.example",
        server_public_key=base64.urlsafe_b64encode(raw_public(world.server)).decode().rstrip("="),
        group="g",
        data_dir=tmp_path,
    )
    owner = AgentSessions(
        config=config,
        identity=AgentIdentity(world.agent),
        machine_id=uuid.uuid4(),
        report=report,
        find_display=lambda: display,
    )
    session = Session(owner, Dial(session_id=uuid.uuid4(), relay_url="wss://x", relay_token="t"))
    session.display = display
    pair = await open_pair(world, authorize=session._authorize, ticket={"permissions": permissions})
    tunnel: Tunnel = pair.agent
    session.ticket = tunnel.ticket
    session.consent_done.set()
    indicator = None
    if display is not None:
        assert tunnel.ticket is not None
        indicator = await session._indicator(tunnel.ticket)
        assert indicator is not None
        log_chat = indicator.on_chat_shown
        assert log_chat is not None

        def chat_shown(shown: ShownWindow) -> None:
            log_chat(shown)
            changed.set()

        indicator.on_chat_shown = chat_shown
    assert tunnel.ticket is not None
    serving = asyncio.create_task(session._accept_streams(tunnel, tunnel.ticket, indicator))
    try:
        yield Agent(pair, session, reports, indicator, changed)
    finally:
        serving.cancel()
        for task in list(session.tasks):
            task.cancel()
        await asyncio.gather(serving, *session.tasks, return_exceptions=True)
        if indicator is not None:
            await indicator.close()
        await pair.technician.close()
        await pair.agent.close()
        for task in pair.relay:
            task.cancel()


def message(text: str) -> bytes:
    return json.dumps({"text": text, "at": "2026-11-29T02:30:00.000Z"}).encode()


async def window_shows(display: DisplayTarget, area: dict[str, tuple[int, int]], text: str) -> str:
    """The chat log's text once it contains ``text`` (the window updates on its own time)."""
    async with asyncio.timeout(30):
        while True:
            shown = await asyncio.to_thread(
                selected_text, display, area["chat_log_start"], area["chat_log_end"]
            )
            if text in shown:
                return shown
            await asyncio.sleep(0.2)


# --- validation, no display needed ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not json", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'{"text": 5, "at": "x"}', "bad_text"),
        (b'{"text": "   ", "at": "x"}', "bad_text"),
        (b'{"text": "hei"}', "bad_at"),
        (json.dumps({"text": "hei", "at": "x" * 65}).encode(), "bad_at"),
        (json.dumps({"text": "ø" * (MAX_TEXT + 1), "at": "x"}).encode(), "too_long"),
        (b" " * 100_000, "too_long"),
        (b"[" * 20_000, "not_json"),  # found by fuzzing: it escaped as RecursionError
    ],
)
def test_malformed_messages_are_refused_with_a_reason(raw: bytes, code: str) -> None:
    with pytest.raises(ChatRefusal) as refusal:
        parse_message(raw)
    assert refusal.value.code == code


def test_a_full_length_message_is_accepted() -> None:
    assert parse_message(message("ø" * MAX_TEXT)) == "ø" * MAX_TEXT


async def test_chat_needs_the_chat_permission(tmp_path: Path) -> None:
    async with agent_session(tmp_path, None, frozenset({Permission.VIEW})) as agent:
        with pytest.raises(StreamRefused) as refused:
            await agent.pair.technician.open("chat")
        assert refused.value.code == StreamCode.REFUSED
        [event] = await agent.reported("stream.refused")
        assert (event.reason, event.details) == ("not_permitted", {"service": "chat"})


async def test_chat_without_a_display_is_refused(tmp_path: Path) -> None:
    async with agent_session(tmp_path, None, WITH_CHAT) as agent:
        with pytest.raises(StreamRefused):
            await agent.pair.technician.open("chat")
        [event] = await agent.reported("stream.refused")
        assert (event.reason, event.details) == ("no_display", {"service": "chat"})
        assert agent.actions("stream.opened") == []


# --- on a real screen -------------------------------------------------------------------


@pytest.mark.desktop
async def test_technician_and_user_chat_through_the_indicator(
    xvfb: DisplayTarget, tmp_path: Path
) -> None:
    async with agent_session(tmp_path, xvfb, WITH_CHAT) as agent:
        assert agent.indicator is not None
        chat = await agent.pair.technician.open("chat")
        await chat.send(message(QUESTION))
        area = await agent.chat_area()
        shown = await window_shows(xvfb, area, QUESTION)
        assert "Kari Nordmann" in shown  # who wrote it, with the time, above the text
        await asyncio.to_thread(screenshot, xvfb, tmp_path / "chat-question.png")

        await asyncio.to_thread(click, xvfb, *area["chat_entry"])
        await asyncio.to_thread(type_text, xvfb, ANSWER)
        await asyncio.to_thread(click, xvfb, *area["chat_send"])
        async with asyncio.timeout(30):
            reply = json.loads(await chat.recv())
        assert reply["text"] == ANSWER
        assert isinstance(reply["at"], str) and reply["at"].endswith("Z")
        shown = await window_shows(xvfb, area, ANSWER)
        assert "Du" in shown
        await asyncio.to_thread(screenshot, xvfb, tmp_path / "chat-answer.png")

        await chat.close()
        [ended] = await agent.reported("chat.ended")
        assert ended.reason == "closed"
        assert ended.details == {
            "to_user": 1,
            "from_user": 1,
            "chars_to_user": len(QUESTION),
            "chars_from_user": len(ANSWER),
        }
        # What was said never reaches the audit log.
        everything = json.dumps([r.model_dump(mode="json") for r in agent.reports])
        assert "Start" not in everything and "Blåbær" not in everything


@pytest.mark.desktop
async def test_a_malformed_message_ends_the_chat_not_the_session(
    xvfb: DisplayTarget, tmp_path: Path
) -> None:
    async with agent_session(tmp_path, xvfb, WITH_CHAT) as agent:
        assert agent.indicator is not None
        for n, (bad, code) in enumerate(
            [
                (b"<script>", "not_json"),
                (message("x" * (MAX_TEXT + 1)), "too_long"),
                (b'{"text": ["a"], "at": "x"}', "bad_text"),
            ],
            start=1,
        ):
            chat = await agent.pair.technician.open("chat")
            await chat.send(bad)
            with pytest.raises(ChannelClosed) as closed:
                async with asyncio.timeout(30):
                    await chat.recv()
            assert getattr(closed.value, "code", None) == StreamCode.BAD_REQUEST
            refusals = await agent.reported("chat.ended", n)
            assert refusals[-1].reason == code
        # The session, its indicator and a new chat all still work.
        assert agent.pair.agent.closed is None and not agent.indicator.ended.is_set()
        chat = await agent.pair.technician.open("chat")
        await chat.send(message("Prøver igjen"))
        await window_shows(xvfb, await agent.chat_area(), "Prøver igjen")
        refused = [e.reason for e in agent.actions("stream.refused")]
        assert refused == ["not_json", "too_long", "bad_text"]


@pytest.mark.desktop
async def test_one_chat_at_a_time(xvfb: DisplayTarget, tmp_path: Path) -> None:
    async with agent_session(tmp_path, xvfb, WITH_CHAT) as agent:
        first = await agent.pair.technician.open("chat")
        await first.send(message("første"))
        second = await agent.pair.technician.open("chat")
        with pytest.raises(ChannelClosed):
            async with asyncio.timeout(30):
                await second.recv()
        [busy] = await agent.reported("chat.ended")
        assert busy.reason == "busy"
        await first.send(message("fortsatt her"))
        assert agent.indicator is not None
        await window_shows(xvfb, await agent.chat_area(), "fortsatt her")


def window_height(display: DisplayTarget, window: int) -> int:
    out = subprocess.run(
        ["xdotool", "getwindowgeometry", str(window)],
        env={**os.environ, "DISPLAY": display.display},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return int(out.split("Geometry:")[1].split("x")[1])


def height_below(display: DisplayTarget, window: int, height: int) -> None:
    deadline = time.monotonic() + 30
    while window_height(display, window) >= height:
        assert time.monotonic() < deadline, "the chat area never folded away"
        time.sleep(0.1)


@pytest.mark.desktop
async def test_the_user_folds_the_chat_away_and_the_next_message_opens_it(
    xvfb: DisplayTarget, tmp_path: Path
) -> None:
    async with agent_session(tmp_path, xvfb, WITH_CHAT) as agent:
        assert agent.indicator is not None
        chat = await agent.pair.technician.open("chat")
        await chat.send(message("første"))
        area = await agent.chat_area()
        first = agent.indicator.chat_shown
        assert first is not None
        opened = await asyncio.to_thread(window_height, xvfb, first.window)
        await asyncio.to_thread(click, xvfb, *area["chat_toggle"])
        # The window shrinks back to the bar.
        await asyncio.to_thread(height_below, xvfb, first.window, opened)
        await asyncio.to_thread(screenshot, xvfb, tmp_path / "chat-folded.png")
        await chat.send(message("andre"))
        async with asyncio.timeout(30):
            while agent.indicator.chat_shown is first:
                agent.changed.clear()
                await agent.changed.wait()
        shown = await window_shows(xvfb, await agent.chat_area(), "andre")
        assert "første" in shown
