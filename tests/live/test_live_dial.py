"""Dials from the attacked side, with real processes: a server node whose relay URL is not
its public URL (signed, so the agent goes there), and Dials forged onto the cluster bus
(the agent refuses each, dials nothing, and the server audits the refusal)."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fjernhjelp.control import statements
from fjernhjelp.control.messages import b64
from tests.e2e.conftest import free_port, start_server
from tests.live.conftest import FULL
from tests.live.live import LiveSite
from tests.portal.world import CLAUSE, build_world

pytestmark = pytest.mark.slow

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis():  # type: ignore[no-untyped-def]
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    return client


@pytest.fixture
def site(db, state, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:
    """A node on Redis whose relay URL (localhost) is not its public URL (127.0.0.1)."""
    bus = _redis()
    world = build_world(db, state, agreement=False)
    world.agreement = world.record_agreement(allows_preapproved=True, preapproved_clause=CLAUSE)
    world.grant = world.make_grant(permissions=FULL, consent_required=False)
    live = LiveSite(world, tmp_path, database_url)
    port = free_port()
    node = f"dial-test-{uuid.uuid4().hex[:8]}"
    live.server = start_server(
        "serve",
        state.settings.data_dir,
        database_url,
        extra_env={
            "FJERNHJELP_NODE_ID": node,
            "FJERNHJELP_NODE_URL": f"http://localhost:{port}",
            "FJERNHJELP_REDIS_URL": REDIS_URL,
        },
        port=port,
    )
    live.node = node  # type: ignore[attr-defined]
    live.bus = bus  # type: ignore[attr-defined]
    yield live
    live.stop()
    bus.close()


def test_a_node_url_signed_by_the_server_is_dialled(site: LiveSite, tmp_path: Path) -> None:
    """Every session here goes through the signed node URL; they also copy a file into a
    folder with the CLI, which asks before it replaces anything."""
    share = tmp_path / "share"
    (share / "docs").mkdir(parents=True)
    site.agent("pc-1", file_roots=[share]).start()
    site.login(site.world.tech)
    site.wait_online(site.api_token(site.world.tech), {"pc-1"})
    note = tmp_path / "note.txt"
    note.write_text("hei\n")
    put = site.cli("connect", "pc-1", "--put", str(note), "docs")
    assert put.returncode == 0, put.stderr
    assert (share / "docs" / "note.txt").read_text() == "hei\n"
    assert f"copied to {share / 'docs' / 'note.txt'}" in put.stderr

    note.write_text("ny tekst\n")
    asked = site.cli("connect", "pc-1", "--put", str(note), "docs")  # no terminal: no
    assert asked.returncode == 1 and "already exists" in asked.stderr
    assert (share / "docs" / "note.txt").read_text() == "hei\n"
    told = site.cli("connect", "pc-1", "--put", str(note), "docs/note.txt", "--overwrite")
    assert told.returncode == 0, told.stderr
    assert (share / "docs" / "note.txt").read_text() == "ny tekst\n"
    assert site.events("dial.refused") == []


def test_forged_dials_are_refused_by_the_agent_and_audited(site: LiveSite) -> None:
    site.agent("pc-1").start()
    site.login(site.world.tech)
    [machine] = site.wait_online(site.api_token(site.world.tech), {"pc-1"})
    signing = site.state.keys.signing
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        forged = {}
        for reason, (url, key) in {
            "other_origin": ("ws://127.0.0.1:{port}/relay/{sid}", None),
            "bad_signature": ("ws://127.0.0.1:{port}/relay/{sid}", "attacker"),
            "not_tls": ("ws://10.0.0.9:{port}/relay/{sid}", "server"),
        }.items():
            sid = uuid.uuid4()
            relay_url = url.format(port=port, sid=sid)
            command: dict[str, object] = {
                "type": "dial",
                "session_id": str(sid),
                "relay_url": relay_url,
                "relay_token": "forged",
            }
            if key is not None:
                signer = signing if key == "server" else Ed25519PrivateKey.generate()
                command["relay_signature"] = b64(
                    signer.sign(statements.relay_statement(sid, relay_url))
                )
            # Onto the node's own channel, as another node (or whoever reached Redis) would.
            message = {"type": "dial", "machine_id": machine["id"], "command": command}
            site.bus.publish(f"fjh:node:{site.node}", json.dumps(message))  # type: ignore[attr-defined]
            forged[str(sid)] = reason
        for sid, reason in forged.items():
            event = site.wait_event("dial.refused", contains=sid)
            assert event.reason == reason and event.outcome == "denied"
            assert event.actor_name == "agent@pc-1" and event.machine_id == machine["id"]
            assert '"known_session":false' in (event.details or "")
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing was dialled
    # The agent is still online and serving.
    assert site.machines(site.api_token(site.world.tech))[0]["online"] is True
