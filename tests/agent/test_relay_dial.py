"""The agent from the attacked side of a Dial: a relay URL it must not trust is refused
before any connection (a listening socket sees none) and reported for the audit; a relay
it may trust is reached with the same TLS verification as the control link."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import json
import socket
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from fjernhjelp.agent.config import AgentConfig
from fjernhjelp.agent.identity import AgentIdentity
from fjernhjelp.agent.remote_session import AgentSessions
from fjernhjelp.agent.tls import client_context
from fjernhjelp.control import statements
from fjernhjelp.control.messages import Dial, SessionEvent, b64
from tests.asyncrun import run_async

SERVER = Ed25519PrivateKey.generate()


def agent(tmp_path: Path, server_url: str, **config: object) -> tuple[AgentSessions, list]:
    reports: list[SessionEvent] = []
    cfg = AgentConfig(
        server_url=server_url,
        server_public_key=base64.urlsafe_b64encode(SERVER.public_key().public_bytes_raw())
        .decode()
        .rstrip("="),
        group="g",
        data_dir=tmp_path,
        machine_id=str(uuid.uuid4()),
        display="none",
        **config,
    )
    sessions = AgentSessions(
        config=cfg,
        identity=AgentIdentity(Ed25519PrivateKey.generate()),
        machine_id=uuid.UUID(cfg.machine_id or ""),
        report=reports.append,
        find_display=lambda: None,
        tls=client_context(cfg),
    )
    return sessions, reports


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """Where a wrongly trusted Dial would connect: it must see no connection."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def connections(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def command(url: str, signed_by: Ed25519PrivateKey | None = None) -> Dial:
    sid = uuid.UUID(url.rsplit("/", 1)[1]) if "/relay/" in url else uuid.uuid4()
    signature = None
    if signed_by is not None:
        signature = b64(signed_by.sign(statements.relay_statement(sid, url)))
    return Dial(session_id=sid, relay_url=url, relay_token="secret", relay_signature=signature)


def _attacks(port: int) -> dict[str, tuple[str, Dial]]:
    sid = uuid.uuid4()
    here = f"127.0.0.1:{port}"
    return {
        # pinned server URL, the Dial: each would reach the listener if obeyed
        "another origin, unsigned": ("http://127.0.0.1:1", command(f"ws://{here}/relay/{sid}")),
        "another origin, forged signature": (
            "http://127.0.0.1:1",
            command(f"ws://{here}/relay/{sid}", Ed25519PrivateKey.generate()),
        ),
        "plain ws for an https server": (f"https://{here}", command(f"ws://{here}/relay/{sid}")),
        "plain ws for an https server, signed": (
            "https://fjernhjelp.example",
            command(f"ws://{here}/relay/{sid}", SERVER),
        ),
        "not this session's relay": (f"http://{here}", command(f"ws://{here}/agent/control")),
    }


REASONS = {
    "another origin, unsigned": "other_origin",
    "another origin, forged signature": "bad_signature",
    "plain ws for an https server": "not_tls",
    "plain ws for an https server, signed": "not_tls",
    "not this session's relay": "wrong_path",
}


@pytest.mark.parametrize("attack", list(REASONS))
def test_an_untrusted_relay_url_is_refused_reported_and_never_dialled(
    tmp_path: Path, listener: socket.socket, attack: str
) -> None:
    pinned, dial = _attacks(listener.getsockname()[1])[attack]
    sessions, reports = agent(tmp_path, pinned)
    run_async(sessions.dial(dial))
    assert connections(listener) == 0
    [report] = reports
    assert (report.action, report.reason) == ("dial.refused", REASONS[attack])
    assert report.session_id == dial.session_id
    assert "secret" not in report.model_dump_json()  # the relay token stays out of the audit
    assert sessions.sessions == {} and sessions.live == {}


def test_a_signed_node_url_is_dialled(tmp_path: Path, listener: socket.socket) -> None:
    """The same listener, reached once the URL is signed by the pinned key: the refusals
    above are the check's doing, not a listener nobody could reach."""
    port = listener.getsockname()[1]
    sessions, reports = agent(tmp_path, "http://127.0.0.1:1")
    dial = command(f"ws://127.0.0.1:{port}/relay/{uuid.uuid4()}", SERVER)

    async def main() -> int:
        task = asyncio.create_task(sessions.dial(dial))
        loop = asyncio.get_running_loop()
        conn, _ = await asyncio.wait_for(loop.sock_accept(listener), 30)
        conn.close()  # the agent's handshake fails; its session ends
        await asyncio.wait_for(task, 30)
        return 1

    assert run_async(main()) == 1
    assert [r.action for r in reports] == []


# --- TLS: the relay is verified like the control link -------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fjernhjelp test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("trusted", [False, True])
def test_a_relay_is_verified_with_the_agents_tls_settings(
    tmp_path: Path, certificate: tuple[Path, Path], trusted: bool
) -> None:
    cert_path, key_path = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_path, key_path)
    first_messages: list[dict] = []

    async def relay(ws: websockets.ServerConnection) -> None:
        first_messages.append(json.loads(await ws.recv()))

    async def main() -> None:
        async with websockets.serve(relay, "127.0.0.1", 0, ssl=server_tls) as server:
            port = server.sockets[0].getsockname()[1]
            extra = {"tls_ca_file": cert_path} if trusted else {}
            sessions, reports = agent(tmp_path, f"https://localhost:{port}", **extra)
            url = f"wss://localhost:{port}/relay/{uuid.uuid4()}"
            await asyncio.wait_for(sessions.dial(command(url)), 30)
            assert reports == []

    run_async(main())
    if trusted:
        assert first_messages == [{"role": "agent", "token": "secret"}]
    else:
        assert first_messages == []  # an unknown certificate: nothing was said to it
