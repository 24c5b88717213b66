"""An agent that holds the real session keys but writes frames the protocol forbids:
the page's parser and multiplexer refuse each with the right GOODBYE code, and the
tunnel is unusable afterwards (docs/tunnel.md §7–§9)."""

from __future__ import annotations

import struct

import pytest

from fjernhjelp.tunnel import CloseCode
from fjernhjelp.tunnel.frames import FLAG_END, Frame, FrameType
from tests.e2e.js.agent import AgentSide, echo
from tests.e2e.js.sessions import connect_page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

FULL = 65530


def data(stream: int, size: int, end: bool = True) -> Frame:
    return Frame(FrameType.DATA, stream, bytes(size), FLAG_END if end else 0)


CASES = {
    "unknown-stream": ([data(7, 1)], CloseCode.PROTOCOL_ERROR),
    "open-to-technician": (
        [Frame(FrameType.OPEN, 2, b'{"service":"shell","params":{}}')],
        CloseCode.PROTOCOL_ERROR,
    ),
    "second-accept": ([Frame(FrameType.ACCEPT, 1)], CloseCode.PROTOCOL_ERROR),
    "credit-beyond-window": (
        [Frame(FrameType.CREDIT, 1, struct.pack(">I", 1))],
        CloseCode.PROTOCOL_ERROR,
    ),
    # Eight whole messages nobody reads: 8 x (65 530 + 64) > 512 KiB of window.
    "window-overrun": ([data(1, FULL)] * 8, CloseCode.FLOW_CONTROL),
    # Five fragments of one message: past 256 KiB before the window runs out.
    "message-too-large": ([data(1, FULL, end=False)] * 5, CloseCode.MESSAGE_TOO_LARGE),
    "undefined-flag": ([Frame(FrameType.DATA, 1, b"x", 0x02)], CloseCode.PROTOCOL_ERROR),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_forbidden_frame_closes_the_tunnel(tunnel_page, harness, case: str) -> None:
    frames, code = CASES[case]
    agent = AgentSide(harness, {"echo": echo}, allowed={"echo"})
    assert connect_page(tunnel_page, agent) == "open"
    tunnel_page.evaluate("window.tun.open('echo').then((s) => { window.s = s; })")

    async def misbehave() -> None:
        assert agent.tunnel is not None
        for frame in frames:
            agent.tunnel.write_urgent(frame)

    harness.run(misbehave())
    why = tunnel_page.evaluate("window.fjh.ended()")
    assert (why["code"], why["by"]) == (code, "local"), why
    closed = harness.run(agent.wait_closed())
    assert (closed.code, closed.by) == (code, "peer")
    # Whole messages that arrived before the violation stay readable (§11); then the
    # stream says why the tunnel ended.
    read, after = tunnel_page.evaluate(
        """async () => {
          let read = 0;
          for (;;) {
            try { await window.s.recv(); read += 1; }
            catch (error) { return [read, window.fjh.describe(error)]; }
          }
        }"""
    )
    assert read == (7 if case == "window-overrun" else 0)
    assert (after["name"], after["code"]) == ("TunnelClosed", code)
