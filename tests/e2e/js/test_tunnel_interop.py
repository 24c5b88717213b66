"""The JavaScript technician against the Python agent, through the project's relay over
real WebSockets: streams, fragmentation, flow control, refusals, control messages, close."""

from __future__ import annotations

import pytest

from fjernhjelp.tunnel import CloseCode
from tests.e2e.js.agent import AgentSide, echo, sink, source
from tests.e2e.js.sessions import connect_page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

SERVICES = {"echo": echo, "source": source, "sink": sink}


def test_streams_in_both_directions_through_the_relay(tunnel_page, harness) -> None:
    agent = AgentSide(
        harness,
        SERVICES,
        allowed={"echo", "source", "sink"},
        control_messages=[
            {"type": "consent", "state": "given"},
            {"type": "sysinfo", "hostname": "lege-pc-04", "os_name": "Debian GNU/Linux 13"},
        ],
    )
    assert connect_page(tunnel_page, agent) == "open"
    assert tunnel_page.evaluate("window.fjh.controlMessages(2)") == agent.control_messages

    # Message sizes around the fragment (65 530) and message (262 144) limits.
    sizes = [0, 1, 65529, 65530, 65531, 131060, 200000, 262144]
    both = tunnel_page.evaluate(
        "(s) => Promise.all([window.fjh.echoRound(s), window.fjh.echoRound(s.slice().reverse())])",
        sizes,
    )
    assert both == [["same"] * len(sizes)] * 2

    # 8 MiB each way at once, as 256 KiB messages: every one is fragmented, and each
    # direction has to wait for credit many times over (the window is 512 KiB).
    up, down = tunnel_page.evaluate(
        "Promise.all([window.fjh.upload(32, 262144), window.fjh.download(32, 262144)])"
    )
    assert up["sent"] == up["sink"]
    assert up["sent"]["size"] == 32 * 262144
    assert down["got"]["sha256"] == down["source"]
    assert down["got"]["size"] == 32 * 262144 and down["sizes"] == [262144]

    # The ids the agent saw are 1, 2, ... without gaps, as the spec requires.
    assert [r.stream_id for r in agent.requests] == list(range(1, len(agent.requests) + 1))

    why = tunnel_page.evaluate(
        "window.tun.close(window.fjh.tunnel.CloseCode.ENDED_BY_TECHNICIAN, 'ferdig')"
        ".then(window.fjh.describe)"
    )
    assert why["code"] == CloseCode.ENDED_BY_TECHNICIAN and why["by"] == "local"
    closed = harness.run(agent.wait_closed())
    assert (closed.code, closed.text, closed.by) == (
        CloseCode.ENDED_BY_TECHNICIAN,
        "ferdig",
        "peer",
    )


def test_refused_and_unknown_streams_leave_the_tunnel_up(tunnel_page, harness) -> None:
    agent = AgentSide(harness, SERVICES, allowed={"echo"})
    assert connect_page(tunnel_page, agent) == "open"
    refused = tunnel_page.evaluate("window.fjh.openResult('files', {path: '/etc'})")
    assert refused["name"] == "StreamRefused"
    assert (refused["code"], refused["slug"], refused["by"]) == (1, "refused", "peer")
    unknown = tunnel_page.evaluate("window.fjh.openResult('nosuch')")
    assert (unknown["name"], unknown["code"], unknown["slug"]) == (
        "StreamRefused",
        2,
        "unknown-service",
    )
    # The agent's decision rested on the verified ticket.
    files = next(r for r in agent.requests if r.service == "files")
    assert files.params == {"path": "/etc"} and files.ticket is not None
    # Still up: an allowed stream works after both refusals.
    assert tunnel_page.evaluate("window.fjh.echoRound([5])") == ["same"]


def test_the_agent_ending_the_session_reaches_the_page(tunnel_page, harness) -> None:
    agent = AgentSide(harness, SERVICES, allowed={"echo"})
    assert connect_page(tunnel_page, agent) == "open"
    # A stream open in the page when the end user ends the session.
    tunnel_page.evaluate("window.tun.open('echo').then((s) => { window.s = s; })")
    harness.run(agent.tunnel.close(CloseCode.ENDED_BY_USER, "Avsluttet av brukeren"))
    why = tunnel_page.evaluate("window.fjh.ended()")
    assert (why["code"], why["slug"], why["by"]) == (6, "ended-by-user", "peer")
    stream_error = tunnel_page.evaluate("window.s.recv().then(() => 'read', window.fjh.describe)")
    assert (stream_error["name"], stream_error["code"]) == ("TunnelClosed", 6)
    sent = tunnel_page.evaluate(
        "window.s.send(new Uint8Array(1)).then(() => 'sent', window.fjh.describe)"
    )
    assert sent["name"] == "TunnelClosed"


def test_a_silent_peer_is_closed_by_keep_alive(tunnel_page, harness) -> None:
    """The path goes silent after the handshake (the relay passes nothing more towards
    the page): the page pings, then closes with `timeout`."""
    agent = AgentSide(harness, SERVICES, allowed={"echo"})
    harness.tampers[agent.session_id] = lambda index, message: [message] if index == 0 else []
    options = {"pingInterval": 0.4, "pingTimeout": 0.8}
    assert connect_page(tunnel_page, agent, options) == "open"
    why = tunnel_page.evaluate("window.fjh.ended()")
    assert (why["slug"], why["by"]) == ("timeout", "local")
    # Its pings reached the agent, which answered them into the void.
    closed = harness.run(agent.wait_closed())
    assert closed.code == CloseCode.TIMEOUT and closed.by == "peer"
    assert agent.tunnel.stats.records_received >= 3  # key-confirming PING, keep-alive PINGs
