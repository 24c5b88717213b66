"""Access from the attacker's side, against real processes: each attempt is refused,
audited, and leaves the stored machines as they were."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fjernhjelp.control import statements
from fjernhjelp.control.messages import Hello, MachineInfo, b64, parse_server_message, unb64
from fjernhjelp.portal.models import OrgKind, Permission
from fjernhjelp.technician.api import Api
from fjernhjelp.tunnel import Refused, TunnelClosed, WebSocketTransport, connect
from fjernhjelp.tunnel.limits import MAX_RECORD
from tests.helpers import make_org, make_user
from tests.live.live import LiveSite, web

pytestmark = pytest.mark.slow


def _online(site: LiveSite, *names: str) -> list[dict]:
    for name in names:
        site.agent(name).start()
    site.login(site.world.tech)
    return site.wait_online(site.api_token(site.world.tech), set(names))


async def test_a_forged_agent_cannot_take_a_machines_place(site: LiveSite) -> None:
    machine = _online(site, "pc-1")[0]
    assert site.server is not None
    url = site.server.url.replace("http", "ws") + "/agent/control"
    async with websockets.connect(url) as ws:
        challenge = parse_server_message(await ws.recv())
        nonce = unb64(challenge.nonce, 32)
        impostor = Ed25519PrivateKey.generate()
        proof = impostor.sign(statements.agent_proof_statement(nonce, uuid.UUID(machine["id"])))
        info = MachineInfo(hostname="evil", os="x", agent_version="0")
        await ws.send(
            Hello(
                machine_id=uuid.UUID(machine["id"]), signature=b64(proof), info=info
            ).model_dump_json()
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4401
    event = site.wait_event("agent.connect", outcome="denied")
    assert event.reason == "bad_signature" and event.machine_id == machine["id"]
    # The real agent is still the one listed, under its own name.
    again = site.machines(site.api_token(site.world.tech))
    assert [(m["hostname"], m["online"]) for m in again] == [("pc-1", True)]


def test_a_used_enrolment_token_is_refused(site: LiveSite) -> None:
    package = site.package(max_uses=1)
    first = site.agent("pc-1", package)
    first.start()
    site.login(site.world.tech)
    token = site.api_token(site.world.tech)
    site.wait_online(token, {"pc-1"})
    second = site.agent("pc-2", package)
    second.start()
    assert second.proc is not None
    assert second.proc.wait(60) == 2  # a refused enrolment is final: the agent stops
    assert "package_used_up" in second.log.read_text()
    refused = site.wait_event("machine.enrolment", outcome="denied")
    assert refused.reason == "package_used_up"
    assert [m["hostname"] for m in site.machines(token)] == ["pc-1"]


def test_a_technician_of_another_vendor_sees_and_reaches_nothing(site: LiveSite) -> None:
    machine = _online(site, "pc-1")[0]
    world = site.world
    rival = make_org(world.db, "Konkurrent AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    outsider = make_user(world.db, world.state, rival, "utenforstaende")
    world.db.commit()
    site.login(outsider, home=site.tmp / "cli-outsider")
    token = site.api_token(outsider)
    assert site.machines(token) == []
    assert site.server is not None
    r = web.post(
        f"{site.server.url}/api/v1/sessions",
        json={"machine_id": machine["id"], "technician_key": b64(bytes(32))},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 403 and r.json()["reason"] == "no_such_machine"
    event = site.wait_event("access.requested", outcome="denied")
    assert event.actor_name == "utenforstaende" and event.reason == "no_such_machine"
    # The same answer for a machine id that does not exist at all.
    r = web.post(
        f"{site.server.url}/api/v1/sessions",
        json={"machine_id": str(uuid.uuid4()), "technician_key": b64(bytes(32))},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 403 and r.json()["reason"] == "no_such_machine"


def test_a_permission_the_grant_lacks_is_refused_by_the_agent(site: LiveSite, tmp_path) -> None:
    # Narrow the grant to viewing only; the next session's ticket carries just that.
    site.update_grant(frozenset({Permission.VIEW}), consent_required=False)
    _online(site, "pc-1")
    result = site.cli("connect", "pc-1", "--get", "anything", str(tmp_path / "x"))
    assert result.returncode == 1 and "refused" in result.stderr
    refused = site.wait_event("stream.refused")
    assert refused.reason == "not_permitted" and '"service":"files"' in refused.details
    assert not (tmp_path / "x").exists()


async def _request(site: LiveSite, machine_id: str) -> tuple[dict, X25519PrivateKey]:
    ephemeral = X25519PrivateKey.generate()
    token = site.api_token(site.world.tech)
    assert site.server is not None
    api = Api(site.server.url, token)
    granted = await asyncio.to_thread(
        api.post,
        "/sessions",
        {
            "machine_id": machine_id,
            "technician_key": base64.b64encode(ephemeral.public_key().public_bytes_raw()).decode(),
        },
    )
    api.close()
    return granted, ephemeral


async def test_an_altered_ticket_is_refused_by_the_agent(site: LiveSite) -> None:
    machine = _online(site, "pc-1")[0]
    granted, ephemeral = await _request(site, machine["id"])
    payload, signature = granted["ticket"].split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["permissions"] = ["view", "control", "terminal", "files", "chat"]  # a wider grant
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    async with websockets.connect(
        granted["relay_url"], max_size=MAX_RECORD + 1024, compression=None
    ) as ws:
        await ws.send(json.dumps({"role": "technician", "token": granted["relay_token"]}))
        agent_key = Ed25519PrivateKey.generate().public_key()  # irrelevant: refused first
        with pytest.raises(Refused) as refused:
            await connect(
                WebSocketTransport(ws),
                ticket=f"{forged}.{signature}",
                ephemeral=ephemeral,
                agent_identity=agent_key,
            )
    assert refused.value.name == "bad-ticket-signature"
    event = site.wait_event("session.refused")
    assert event.reason == "bad-ticket-signature" and event.actor_name == "agent@pc-1"


async def test_a_relay_that_flips_a_byte_ends_the_tunnel(site: LiveSite) -> None:
    """A man in the middle between the technician and the relay changes one byte of the
    first record after the handshake: both ends close, nothing reaches a stream."""
    machine = _online(site, "pc-1")[0]
    granted, ephemeral = await _request(site, machine["id"])
    seen = {"records": 0}

    async def tamper(client: websockets.ServerConnection) -> None:
        async with websockets.connect(
            granted["relay_url"], max_size=MAX_RECORD + 1024, compression=None
        ) as upstream:

            async def up() -> None:
                async for message in client:
                    await upstream.send(message)

            async def down() -> None:
                async for message in upstream:
                    if isinstance(message, bytes) and not message.startswith(b"FJHT"):
                        seen["records"] += 1
                        if seen["records"] == 1:
                            message = message[:-1] + bytes([message[-1] ^ 0x01])
                    await client.send(message)

            await asyncio.gather(up(), down(), return_exceptions=True)

    async with websockets.serve(
        tamper, "127.0.0.1", 0, max_size=MAX_RECORD + 1024, compression=None
    ) as proxy:
        port = proxy.sockets[0].getsockname()[1]
        async with websockets.connect(
            f"ws://127.0.0.1:{port}", max_size=MAX_RECORD + 1024, compression=None
        ) as ws:
            await ws.send(json.dumps({"role": "technician", "token": granted["relay_token"]}))
            tunnel = await connect(
                WebSocketTransport(ws),
                ticket=granted["ticket"],
                ephemeral=ephemeral,
                agent_identity=_agent_key(granted),
            )
            with pytest.raises(TunnelClosed):
                stream = await tunnel.open("info")
                await stream.recv()
            closed = await tunnel.wait_closed()
            assert closed.name == "record-error"
    ended = site.wait_event("session.ended_at_agent")
    assert ended.reason != "normal"


def _agent_key(granted: dict):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(base64.b64decode(granted["agent_identity_key"]))
