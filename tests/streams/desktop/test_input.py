"""Keyboard and pointer injection details: dead keys, Shift, keymap hygiene, and what a
viewer leaving mid-press leaves behind (nothing)."""

from __future__ import annotations

import asyncio

import pytest
from Xlib import XK
from Xlib import display as xdisplay

from tests.desktop.xvfb import EntryApp, Xvfb, wait_for
from tests.streams.desktop.rfbclient import RfbClient

pytestmark = pytest.mark.desktop

DEAD_ACUTE, DEAD_DIAERESIS = 0xFE51, 0xFE57  # keysyms (X11 keysymdef.h)


def keyboard_mapping(server: Xvfb) -> list[tuple[int, ...]]:
    d = xdisplay.Display(server.display)
    low, high = d.display.info.min_keycode, d.display.info.max_keycode
    mapping = [tuple(m) for m in d.get_keyboard_mapping(low, high - low + 1)]
    d.close()
    return mapping


def keys_down(server: Xvfb) -> int:
    d = xdisplay.Display(server.display)
    count = sum(bin(byte).count("1") for byte in d.query_keymap())
    d.close()
    return count


async def session(port: int) -> RfbClient:
    client = await RfbClient.connect(port)
    await client.handshake()
    client.set_encodings([0])
    return client


async def round_trip(client: RfbClient) -> None:
    """Everything sent before has been handled once a requested update arrives."""
    client.request(False, 0, 0, 1, 1)
    await client.read_update()


def tap(client: RfbClient, keysym: int) -> None:
    client.key(True, keysym)
    client.key(False, keysym)


def test_dead_keys_compose_and_unicode_keysyms_reach_the_application(
    agent, xserver: Xvfb, entry_app: EntryApp
) -> None:
    before = keyboard_mapping(xserver)

    async def run() -> None:
        client = await session(agent.port)
        client.pointer(1, *entry_app.ENTRY)
        client.pointer(0, *entry_app.ENTRY)
        # None of these is on the Xvfb's US layout; the application composes the dead
        # keys with the next letter, as on a Norwegian keyboard.
        for keysym in (DEAD_ACUTE, ord("e"), 0x010020AC, DEAD_DIAERESIS, ord("u"), XK.XK_Aring):
            tap(client, keysym)
        client.pointer(1, *entry_app.BUTTON)
        client.pointer(0, *entry_app.BUTTON)
        await round_trip(client)
        await client.close()

    agent.run(run())
    assert entry_app.wait_result() == "é€üÅ"
    # The session ended: the spare keycodes it borrowed are free again.
    assert wait_for(lambda: keyboard_mapping(xserver) == before)


def test_norwegian_letters_are_keys_of_their_own_for_the_whole_session(
    agent, xserver: Xvfb, entry_app: EntryApp
) -> None:
    before = keyboard_mapping(xserver)
    during: list[list[tuple[int, ...]]] = []

    async def run() -> None:
        client = await session(agent.port)
        await round_trip(client)
        during.append(keyboard_mapping(xserver))  # before the first key
        client.pointer(1, *entry_app.ENTRY)
        client.pointer(0, *entry_app.ENTRY)
        for char in "ÆØÅ æøå":
            tap(client, ord(char))
        client.pointer(1, *entry_app.BUTTON)
        client.pointer(0, *entry_app.BUTTON)
        await round_trip(client)
        during.append(keyboard_mapping(xserver))
        await client.close()

    agent.run(run())
    assert entry_app.wait_result() == "ÆØÅ æøå"
    for pair in ((XK.XK_ae, XK.XK_AE), (XK.XK_oslash, XK.XK_Ooblique), (XK.XK_aring, XK.XK_Aring)):
        # One key each, lower and upper case, bound before anything was typed...
        assert sum(m[:2] == pair for m in during[0]) == 1
    # ...and typing them changed the keymap no further.
    assert during[1] == during[0]
    assert wait_for(lambda: keyboard_mapping(xserver) == before)


def test_shift_follows_the_character_not_the_technicians_shift_key(
    agent, xserver: Xvfb, entry_app: EntryApp
) -> None:
    async def run() -> None:
        client = await session(agent.port)
        client.pointer(1, *entry_app.ENTRY)
        client.pointer(0, *entry_app.ENTRY)
        tap(client, ord("A"))  # "A" with no Shift held: the agent adds Shift
        client.key(True, XK.XK_Shift_L)
        tap(client, ord("/"))  # "/" with Shift held (a Norwegian Shift+7): Shift lifted
        tap(client, ord("B"))
        client.key(False, XK.XK_Shift_L)
        client.pointer(1, *entry_app.BUTTON)
        client.pointer(0, *entry_app.BUTTON)
        await round_trip(client)
        await client.close()

    agent.run(run())
    assert entry_app.wait_result() == "A/B"


def test_a_viewer_leaving_mid_press_leaves_no_key_or_button_down(
    agent, xserver: Xvfb, entry_app: EntryApp
) -> None:
    before = keyboard_mapping(xserver)

    async def run() -> int:
        client = await session(agent.port)
        client.key(True, XK.XK_Shift_L)
        client.key(True, XK.XK_Control_L)
        client.key(True, XK.XK_oslash)  # held on a borrowed keycode
        client.pointer(1, 300, 300)
        await round_trip(client)
        held = await asyncio.to_thread(keys_down, xserver)
        client.writer.close()  # gone without letting go
        await client.closed_by_server()
        for _ in range(100):
            if await asyncio.to_thread(keys_down, xserver) == 0:
                break
            await asyncio.sleep(0.05)
        return held

    held = agent.run(run())
    assert held == 3
    assert keys_down(xserver) == 0
    d = xdisplay.Display(xserver.display)
    buttons = d.screen().root.query_pointer().mask
    d.close()
    assert buttons & 0x1F00 == 0  # Button1..5 masks
    assert wait_for(lambda: keyboard_mapping(xserver) == before)


def test_view_only_session_injects_nothing(
    view_only_agent, xserver: Xvfb, entry_app: EntryApp
) -> None:
    before = keyboard_mapping(xserver)

    async def run() -> None:
        client = await session(view_only_agent.port)
        client.pointer(1, *entry_app.ENTRY)
        client.pointer(0, *entry_app.ENTRY)
        for keysym in (ord("x"), XK.XK_aring, XK.XK_Return):
            tap(client, keysym)
        client.pointer(1, *entry_app.BUTTON)
        client.pointer(0, *entry_app.BUTTON)
        await round_trip(client)
        await client.close()

    view_only_agent.run(run())
    assert entry_app.keys() == []
    assert entry_app.wait_result(timeout=1) is None
    assert keyboard_mapping(xserver) == before


def test_a_new_pointer_shape_is_sent_without_any_screen_change(
    agent, xserver: Xvfb, entry_app: EntryApp
) -> None:
    async def run() -> tuple[list, list]:
        client = await RfbClient.connect(agent.port)
        await client.handshake()
        client.set_encodings([0, -239])
        client.pointer(0, 700, 600)  # over the bare root window: X's default cursor
        client.request(False, 0, 0, 1, 1)
        first = await client.read_update()
        client.pointer(0, *entry_app.ENTRY)  # Tk shows its text cursor over an Entry
        client.request(True, 0, 0, 1, 1)  # a corner where nothing changes
        second = await client.read_update()
        await client.close()
        return first, second

    first, second = agent.run(run())
    (before,) = [r for r in first if r.encoding == -239]
    (after,) = [r for r in second if r.encoding == -239]
    assert [r for r in second if r.encoding == 0] == []  # only the shape changed
    assert (after.w, after.h, after.payload) != (before.w, before.h, before.payload)
