"""desktop.js's channel object carries noVNC over the JavaScript tunnel to a Python RFB
source behind a real ``tunnel.accept``: pixels on the canvas, input and clipboard at the
source, and both ways of ending."""

from __future__ import annotations

import pytest

from tests.e2e.js.agent import AgentSide
from tests.e2e.js.rfb import COLOURS, RfbSource
from tests.e2e.js.sessions import connect_page, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

CHANNEL_SHAPE = {
    "own": ["binaryType", "onclose", "onerror", "onmessage", "onopen", "protocol", "readyState"],
    "proto": ["close", "constructor", "send", "stream"],
}


@pytest.fixture
def desktop_page(page, harness):  # type: ignore[no-untyped-def]
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto(harness.url + "/test/desktop.html")
    wait_until(page, "window.fjh && window.desk")
    page.console_messages = messages
    yield page
    assert page.evaluate("window.cspViolations") == []


@pytest.mark.parametrize("mode", ["open", "pending"])
def test_novnc_shows_the_framebuffer_and_sends_input_through_the_tunnel(
    desktop_page, harness, mode
) -> None:
    page = desktop_page
    source = RfbSource(clipboard="Blåbærsyltetøy")
    agent = AgentSide(harness, {"desktop": source.serve}, allowed={"desktop"})
    assert connect_page(page, agent) == "open"
    assert page.evaluate("(m) => window.desk.open(m)", mode) == CHANNEL_SHAPE
    page.evaluate("window.desk.connected()")
    assert source.client_version == b"RFB 003.008\n"
    harness.run(_until(lambda: source.encodings))  # SetPixelFormat comes before SetEncodings
    # noVNC always asks for 32 bpp little-endian R,G,B at shifts 0, 8, 16.
    fmt = source.pixel_format
    assert (fmt.bpp, fmt.big_endian, fmt.shifts) == (32, False, (0, 8, 16))
    w, h = source.width, source.height
    corners = [
        [w // 4, h // 4],
        [3 * w // 4, h // 4],
        [w // 4, 3 * h // 4],
        [3 * w // 4, 3 * h // 4],
    ]
    page.evaluate("([x, y, rgb]) => window.desk.drawn(x, y, rgb)", [*corners[3], COLOURS[3]])
    assert page.evaluate("(p) => window.desk.pixels(p)", corners) == [list(c) for c in COLOURS]
    assert page.evaluate("window.desk.until(() => window.desk.events.clipboard.length)")
    assert page.evaluate("window.desk.events.clipboard") == ["Blåbærsyltetøy"]

    page.evaluate("window.rfb.sendKey(0x61, 'KeyA')")
    page.evaluate("window.desk.sendCombo('ctrl-alt-del')")
    page.evaluate("window.desk.sendCombo('alt-tab')")
    page.evaluate("window.rfb.clipboardPasteFrom('Hei på deg')")
    box = page.locator("#screen canvas").bounding_box()
    page.mouse.click(box["x"] + 10, box["y"] + 20)
    # A click is a move, a press and a release: wait for the release, not for any two
    # pointer events (under load the press can arrive well before the release).
    harness.run(
        _until(
            lambda: (
                (1, 10, 20) in source.pointer
                and source.pointer[-1] == (0, 10, 20)
                and source.cut_text
            )
        )
    )
    assert source.keys == [
        (True, 0x61), (False, 0x61),
        (True, 0xFFE3), (True, 0xFFE9), (True, 0xFFFF),
        (False, 0xFFFF), (False, 0xFFE9), (False, 0xFFE3),
        (True, 0xFFE9), (True, 0xFF09), (False, 0xFF09), (False, 0xFFE9),
    ]  # fmt: skip
    assert source.cut_text == ["Hei på deg"]
    assert (1, 10, 20) in source.pointer and source.pointer[-1] == (0, 10, 20)

    # Disconnecting from the page closes the stream, and noVNC hears the close at once
    # (without the answer it would log "Disconnection timed out." after 3 s).
    assert page.evaluate("window.rfb.disconnect(); window.desk.disconnected()") == {"clean": True}
    harness.run(_until(lambda: source.ended is not None))
    assert not any("timed out" in m for m in page.console_messages)
    assert page.evaluate("window.channel.readyState") == "closed"
    # The tunnel stays up for the other panels.
    assert page.evaluate("window.tun.closed") is None


def test_view_only_sends_no_input(desktop_page, harness) -> None:
    page = desktop_page
    source = RfbSource()
    agent = AgentSide(harness, {"desktop": source.serve}, allowed={"desktop"})
    assert connect_page(page, agent) == "open"
    page.evaluate("window.desk.open('pending', {viewOnly: true})")
    page.evaluate("window.desk.connected()")
    page.evaluate("window.rfb.sendKey(0x61, 'KeyA'); window.desk.sendCombo('ctrl-alt-del')")
    box = page.locator("#screen canvas").bounding_box()
    page.mouse.click(box["x"] + 5, box["y"] + 5)
    # Then the same with control: the stream is in order, so anything the view-only
    # viewer had sent would have arrived before these.
    page.evaluate("window.rfb.viewOnly = false; window.rfb.sendKey(0x62, 'KeyB')")
    page.mouse.click(box["x"] + 7, box["y"] + 9)
    harness.run(_until(lambda: len(source.pointer) >= 2))
    assert source.keys == [(True, 0x62), (False, 0x62)]
    assert {(x, y) for _, x, y in source.pointer} == {(7, 9)}


def test_the_agent_ending_the_desktop_stream_disconnects_novnc(desktop_page, harness) -> None:
    page = desktop_page
    source = RfbSource()
    holder: dict[str, object] = {}

    async def serve_then_close(channel, request) -> None:  # type: ignore[no-untyped-def]
        holder["channel"] = channel
        await source.serve(channel, request)

    agent = AgentSide(harness, {"desktop": serve_then_close}, allowed={"desktop"})
    assert connect_page(page, agent) == "open"
    page.evaluate("window.desk.open('pending')")
    page.evaluate("window.desk.connected()")
    harness.run(holder["channel"].close())  # type: ignore[attr-defined]
    assert page.evaluate("window.desk.disconnected()") == {"clean": True}


def test_a_refused_desktop_stream_fails_the_viewer(desktop_page, harness) -> None:
    page = desktop_page
    agent = AgentSide(harness, {"desktop": RfbSource().serve}, allowed=set())
    assert connect_page(page, agent) == "open"
    page.evaluate("window.desk.open('pending')")
    assert page.evaluate("window.desk.disconnected()") == {"clean": False}
    assert not page.evaluate("window.desk.events.connected")


async def _until(predicate) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    async with asyncio.timeout(20):
        while not predicate():  # noqa: ASYNC110 - the RFB source records into plain lists
            await asyncio.sleep(0.02)
