"""The agent's end of the tunnel in the browser (tunnel/agent.js), as the end user's page
runs it when it shares the screen (issue 12), attacked: a page given another server key
than the one that signed the ticket refuses it (REFUSE bad-ticket-signature, no keys,
no stream); a relay that flips one byte of a record, in either direction, ends the
session (record-error) at both ends. The technician here is the Python one
(``fjernhjelp.tunnel.connect``), so the two implementations also meet the other way
round. A technician without the Support agreement cannot make a Support session at all:
tests/support/test_attacks.py (test_support_where_the_agreement_covers_only_access_is_refused,
test_a_stranger_id_is_refused_like_no_agreement) asserts that refusal and its audit event.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from websockets.asyncio.client import connect as ws_connect

from fjernhjelp.server.relay import Role
from fjernhjelp.tunnel import CloseCode, RefuseCode, Refused, TunnelClosed, connect
from fjernhjelp.tunnel.handshake import raw_public
from fjernhjelp.tunnel.limits import MAX_RECORD
from fjernhjelp.tunnel.tickets import technician_key_hash
from fjernhjelp.tunnel.transport import WebSocketTransport
from tests.e2e.js.harness import Harness, Tamper
from tests.e2e.js.test_tunnel_attacks import flip
from tests.tunnel.helpers import World

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

MACHINE = "support:3f1c0d9e-0000-4000-8000-000000000001"


async def _technician(
    harness: Harness, token: str, ticket: str, identity: bytes, ephemeral: X25519PrivateKey
) -> Any:
    """The technician's end: HELLO, then an echo stream; what ended it, or the refusal."""
    ws = await ws_connect(harness.ws_url, compression=None, max_size=MAX_RECORD + 1024)
    await ws.send(json.dumps({"role": "technician", "token": token}))
    try:
        tunnel = await connect(
            WebSocketTransport(ws),
            ticket=ticket,
            ephemeral=ephemeral,
            agent_identity=Ed25519PublicKey.from_public_bytes(identity),
        )
    except Refused as exc:
        return exc
    try:
        echo = await tunnel.open("echo", {})
        for n in range(6):
            await echo.send(f"message {n}".encode())
            assert await echo.recv() == f"message {n}".encode()
    except TunnelClosed:
        return await tunnel.wait_closed()
    await tunnel.close(CloseCode.ENDED_BY_TECHNICIAN)
    return await tunnel.wait_closed()


def _session(
    harness: Harness,
    page: Any,
    server_key: Ed25519PublicKey,
    world: World,
    tamper: tuple[str, Tamper] | None,
) -> dict[str, Any]:
    identity = base64.b64decode(page.evaluate("window.fjh.agentKey()"))
    session_id = "sess-" + secrets.token_hex(6)
    if tamper is not None:
        # In place before either end joins the relay (an end takes it when it joins).
        towards, change = tamper
        (harness.agent_tampers if towards == "agent" else harness.tampers)[session_id] = change
    technician_token, agent_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    harness.allow(technician_token, session_id, Role.TECHNICIAN)
    harness.allow(agent_token, session_id, Role.AGENT)
    ephemeral = X25519PrivateKey.generate()
    ticket = world.token(
        session_id=session_id,
        machine_id=MACHINE,
        grant_id="",
        technician_key_sha256=technician_key_hash(raw_public(ephemeral)),
    )
    return {
        "technician": harness.spawn(
            _technician(harness, technician_token, ticket, identity, ephemeral)
        ),
        "agent_args": [
            harness.ws_url,
            agent_token,
            base64.b64encode(server_key.public_bytes_raw()).decode(),
            MACHINE,
        ],
    }


def _run(
    harness: Harness,
    page: Any,
    key: Ed25519PublicKey,
    world: World,
    tamper: tuple[str, Tamper] | None = None,
) -> tuple[Any, Any]:
    started = _session(harness, page, key, world, tamper)
    agent = page.evaluate("(a) => window.fjh.acceptAs(...a)", started["agent_args"])
    return agent, started["technician"].result(60)


def test_a_page_given_another_server_key_refuses_the_ticket(
    harness: Harness, tunnel_page: Any
) -> None:
    world = World()
    other = Ed25519PrivateKey.generate().public_key()  # not the key that signed the ticket
    agent, technician = _run(harness, tunnel_page, other, world)
    assert agent == {"error": "TicketRefused", "code": RefuseCode.BAD_TICKET_SIGNATURE}
    assert isinstance(technician, Refused) and technician.code == RefuseCode.BAD_TICKET_SIGNATURE


def test_the_right_key_opens_and_a_normal_end_is_seen_by_both(
    harness: Harness, tunnel_page: Any
) -> None:
    world = World()
    # The technician closes after its echoes: a clean session, both ends agree.
    agent, technician = _run(
        harness, tunnel_page, world.server.public_key(), world, ("agent", lambda i, m: [m])
    )
    assert agent["confirmed"] is True
    assert isinstance(technician, TunnelClosed)


@pytest.mark.parametrize("towards", ["agent", "technician"])
def test_a_relay_that_flips_a_byte_ends_the_session(
    harness: Harness, tunnel_page: Any, towards: str
) -> None:
    world = World()
    agent, technician = _run(
        harness, tunnel_page, world.server.public_key(), world, (towards, flip(3))
    )
    assert agent["confirmed"] is True
    assert agent["code"] == CloseCode.RECORD_ERROR
    assert isinstance(technician, TunnelClosed) and technician.code == CloseCode.RECORD_ERROR
    assert agent["by"] == ("local" if towards == "agent" else "peer")


# The page's video sender (share_video.js) on a canvas's capture, its stream a stand-in
# that holds every message while "congested" and releases them a few frames later: the
# tunnel's backpressure without a tunnel. The encoder's configure() is watched, so the
# test sees the bitrate the encoder was actually given.
CONGESTED_SENDER = """async () => {
  const { shareScreen } = await import("/static/js/share_video.js");
  const configured = [];
  const configure = VideoEncoder.prototype.configure;
  VideoEncoder.prototype.configure = function (config) {
    configured.push(config.bitrate);
    return configure.call(this, config);
  };
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [480, 360];
  document.body.append(canvas);
  const context = canvas.getContext("2d");
  let n = 0;
  const paint = setInterval(() => {  // every frame differs: none is dropped as unchanged
    n += 1;
    context.fillStyle = `rgb(${(n * 37) % 256}, ${(n * 11) % 256}, ${(n * 91) % 256})`;
    context.fillRect(0, 0, 480, 360);
    context.fillStyle = "#fff";
    context.fillRect((n * 17) % 460, (n * 7) % 340, 20, 20);
  }, 15);
  const held = [];
  const state = { congested: true };
  const release = setInterval(() => { for (const resolve of held.splice(0)) resolve(); }, 200);
  const stream = {
    params: { codecs: ["vp8"] },
    send() {
      return state.congested ? new Promise((resolve) => held.push(resolve)) : Promise.resolve();
    },
    recv: () => new Promise(() => {}),
    close() {},
  };
  const stats = {};
  const track = canvas.captureStream(30).getVideoTracks()[0];
  const stop = await shareScreen(stream, track, { stats });
  window.sender = {
    stats, configured, state,
    stop() { stop(); clearInterval(paint); clearInterval(release); track.stop(); },
  };
}"""


def _until(page: Any, condition: str, seconds: float = 30) -> bool:
    """A condition on the page, waited for with a deadline."""
    return bool(
        page.evaluate(
            f"""async () => {{
              const end = performance.now() + {seconds * 1000};
              while (performance.now() < end) {{
                if ({condition}) return true;
                await new Promise((r) => setTimeout(r, 20));
              }}
              return false;
            }}"""
        )
    )


def test_the_shared_screens_bitrate_falls_under_backpressure_and_recovers(
    tunnel_page: Any,
) -> None:
    tunnel_page.evaluate(CONGESTED_SENDER)
    try:
        assert _until(tunnel_page, "window.sender.configured.length > 0")
        full = tunnel_page.evaluate("window.sender.configured[0]")
        assert full == 480 * 360 * 2  # the screen's full bitrate to start with
        # Held chunks make captured frames wait: the bitrate steps down, to below half.
        assert _until(tunnel_page, f"Math.min(...window.sender.configured) < {full * 0.5}"), (
            tunnel_page.evaluate("JSON.stringify(window.sender)")
        )
        lowest = tunnel_page.evaluate("Math.min(...window.sender.configured)")
        assert lowest >= 100_000  # the floor
        # The tunnel frees up: the bitrate climbs back, a step (of 1.15) at a time.
        tunnel_page.evaluate("window.sender.state.congested = false")
        assert _until(tunnel_page, f"window.sender.configured.at(-1) > {lowest}")
        configured = tunnel_page.evaluate("window.sender.configured")
        steps = [b / a for a, b in itertools.pairwise(configured)]
        assert all(0.69 <= s <= 0.71 or 1.14 <= s <= 1.16 for s in steps), configured
        assert tunnel_page.evaluate("window.sender.stats.keyFrames") >= 1
    finally:
        tunnel_page.evaluate("window.sender.stop()")
