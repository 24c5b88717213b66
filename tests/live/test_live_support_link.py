"""A Support client's control link after its session ended, with a real server: the
server keeps the link open for the client's last reports and leaves the closing to the
client, so a report sent a moment after the cut is still recorded; a client that stays
on is closed after the grace time (support_link_grace_seconds). The client here is the
client's own control link (agent.link) driven by the test, so it can be slow on purpose.
And a joined session whose tunnel never comes ends on the server's clock: the real
client is told and exits."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fjernhjelp.agent.link import ControlLink, LinkConfig
from fjernhjelp.agent.runner import control_url
from fjernhjelp.control.messages import Cut, Dial, MachineInfo, SessionEvent
from fjernhjelp.support.client import EXIT_ENDED
from tests.asyncrun import run_async
from tests.conftest import only_on_one_backend
from tests.live.live import LiveSite, web
from tests.live.test_live_support import Client, _listing, _server_key
from tests.portal.world import build_world

pytestmark = [pytest.mark.slow]

GRACE = 3


@pytest.fixture
def site(db, state, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:
    live = LiveSite(build_world(db, state), tmp_path, database_url)
    live.start_server(
        {
            "FJERNHJELP_SUPPORT_LINK_GRACE_SECONDS": str(GRACE),
            # The shortest code lifetime, swept often: a joined session whose tunnel
            # never comes ends about a minute after the join.
            "FJERNHJELP_SUPPORT_CODE_MINUTES": "1",
            "FJERNHJELP_SUPPORT_SWEEP_SECONDS": "1",
        }
    )
    yield live
    live.stop()


def _joined(site: LiveSite) -> tuple[str, dict[str, str]]:
    assert site.server is not None
    token = site.api_token(site.world.tech)
    made = web.post(
        site.server.url + "/api/v1/support-sessions",
        json={"customer_org_id": str(site.world.gp.id)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201, made.text
    joined = web.post(site.server.url + "/api/v1/support/join", json={"code": made.json()["code"]})
    assert joined.status_code == 200, joined.text
    return token, joined.json()


def _cancel(site: LiveSite, token: str, session_id: str) -> None:
    assert site.server is not None
    answer = web.post(
        f"{site.server.url}/api/v1/support-sessions/{session_id}/cancel",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text


def _link(site: LiveSite, joined: dict[str, str], on_cut) -> ControlLink:  # type: ignore[no-untyped-def]
    assert site.server is not None

    async def no_dial(_command: Dial) -> None:
        raise AssertionError("no tunnel in these tests")

    return ControlLink(
        LinkConfig(
            control_url=control_url(site.server.url),
            server_public_key=Ed25519PublicKey.from_public_bytes(
                site.state.keys.signing.public_key().public_bytes_raw()
            ),
            machine_id=uuid.UUID(joined["session_id"]),
            identity=Ed25519PrivateKey.generate(),
            support_token=joined["client_token"],
            client_version="test",
        ),
        machine_info=lambda: MachineInfo(hostname="", os="", agent_version="test"),
        on_dial=no_dial,
        on_cut=on_cut,
    )


def test_the_clients_last_report_after_a_cut_is_recorded(site: LiveSite) -> None:
    token, joined = _joined(site)
    session_id = uuid.UUID(joined["session_id"])

    async def client() -> None:
        cut = asyncio.Event()

        async def on_cut(_command: Cut) -> None:
            cut.set()

        link = _link(site, joined, on_cut)
        runner = asyncio.create_task(link.run_once())
        await asyncio.wait_for(link.connected.wait(), 60)
        await asyncio.to_thread(_cancel, site, token, str(session_id))
        await asyncio.wait_for(cut.wait(), 60)
        # A client slow to finish with its session (a window closing, a loaded
        # machine): the link must still be there when its last report comes.
        await asyncio.sleep(GRACE / 2)
        assert not runner.done()
        link.report_event(
            SessionEvent(
                session_id=session_id,
                action="session.ended_at_agent",
                reason="cut:cancelled",
                details={"by": "server"},
            )
        )
        await link.flush(30)
        await link.close()
        await asyncio.wait_for(runner, 30)  # the client closed it: a clean end

    run_async(client())
    last = site.wait_event("session.ended_at_agent", timeout=60)
    assert last.reason == "cut:cancelled" and last.actor_name == "end-user"
    assert json.loads(last.details)["session"] == str(session_id)


def test_a_client_that_stays_on_after_its_session_is_closed_by_the_server(
    site: LiveSite,
) -> None:
    token, joined = _joined(site)

    async def client() -> websockets.ConnectionClosed:
        async def on_cut(_command: Cut) -> None:
            pass  # and never leaves

        link = _link(site, joined, on_cut)
        runner = asyncio.create_task(link.run_once())
        await asyncio.wait_for(link.connected.wait(), 60)
        await asyncio.to_thread(_cancel, site, token, joined["session_id"])
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(runner, 60)
        return closed.value

    closed = run_async(client())
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (4410, "session_over")


@pytest.fixture
def once(backend) -> None:  # type: ignore[no-untyped-def]
    """Asked for before ``site``: a skip costs no server. The expiry's queries run on
    each backend in tests/support/test_expiry.py; this waits out a whole code's lifetime."""
    only_on_one_backend(backend)


def test_a_joined_client_whose_technician_never_comes_is_ended_by_the_server(
    once: None, site: LiveSite, tmp_path: Path
) -> None:
    token = site.api_token(site.world.tech)
    assert site.server is not None
    made = web.post(
        site.server.url + "/api/v1/support-sessions",
        json={"customer_org_id": str(site.world.gp.id)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201, made.text
    session_id = made.json()["id"]
    client = Client(site, tmp_path, made.json()["code"], _server_key(site), ":0")
    try:
        site.wait_event("support.client_started", timeout=60)
        # The client's own wait is 20 minutes; the server's clock ends it first.
        assert client.wait(180) == EXIT_ENDED, client.log.read_text()[-3000:]
    finally:
        client.stop()
    assert "The session has ended" in client.log.read_text()
    assert _listing(client.home, client.tmpdir) == []
    expired = site.wait_event("support.session_expired")
    assert expired.reason == "joined_expired" and expired.actor_name == "system"
    assert json.loads(expired.details)["session"] == session_id
    over = site.wait_event("session.ended", reason="joined_expired")
    assert json.loads(over.details)["session"] == session_id
