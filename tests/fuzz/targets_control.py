"""Fuzz targets for what the control link, the installer package, the Support client's
stamp and the SAS reveal read from the other side."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import struct
import tempfile
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fjernhjelp.control import package as pkg
from fjernhjelp.control import statements
from fjernhjelp.control.dial import DialRefused, check_dial, make_dial
from fjernhjelp.control.messages import (
    Challenge,
    Dial,
    Hello,
    MachineInfo,
    MalformedMessage,
    SessionEvent,
    SupportHello,
    parse_agent_message,
    parse_server_message,
    unb64,
)
from fjernhjelp.support import stamp as stamps
from fjernhjelp.tunnel import sas
from fjernhjelp.tunnel.streams import decode_json
from tests.fuzz.harness import Target, refuses, same

SERVER_URL = "https://fjernhjelp.example.no"
SESSION = uuid.UUID("5b0f6a7e-1c2d-4e3f-8a9b-0c1d2e3f4a5b")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@cache
def _server_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"fuzz server key").digest())


# --- control link ------------------------------------------------------------------------


def control_from_server(data: bytes) -> None:
    """What the agent reads from the server: a message or MalformedMessage; a Dial is
    then checked (DialRefused), a Challenge's fields decoded (MalformedMessage)."""
    for raw in _both_forms(data):
        message = refuses(lambda raw=raw: parse_server_message(raw), MalformedMessage)
        if isinstance(message, Dial):
            refuses(
                lambda m=message: check_dial(
                    m, server_url=SERVER_URL, server_key=_server_key().public_key()
                ),
                DialRefused,
            )
        elif isinstance(message, Challenge):
            nonce = refuses(lambda m=message: unb64(m.nonce, 32), MalformedMessage)
            if nonce is not None:
                statements.server_challenge_statement(nonce)
            refuses(lambda m=message: unb64(m.signature, 64), MalformedMessage)


def control_from_agent(data: bytes) -> None:
    """What the server reads from an agent or a Support client: a message or
    MalformedMessage; the keys and signatures in it decode or are MalformedMessage."""
    for raw in _both_forms(data):
        message = refuses(lambda raw=raw: parse_agent_message(raw), MalformedMessage)
        if isinstance(message, Hello):
            refuses(lambda m=message: unb64(m.signature, 64), MalformedMessage)
        elif isinstance(message, SupportHello):
            key = refuses(lambda m=message: unb64(m.public_key, 32), MalformedMessage)
            refuses(lambda m=message: unb64(m.signature, 64), MalformedMessage)
            if key is not None:
                statements.support_client_proof_statement(bytes(32), message.session_id, key)
        elif isinstance(message, SessionEvent):
            json.dumps(message.details)  # what the audit log stores must serialise


def _both_forms(data: bytes) -> list[str | bytes]:
    # The agent hub reads text frames (str), the agent reads what websockets gives.
    forms: list[str | bytes] = [data]
    with contextlib.suppress(UnicodeDecodeError):
        forms.append(data.decode("utf-8"))
    return forms


def _server_seeds() -> Iterable[bytes]:
    yield Challenge(nonce="A" * 43 + "=", signature="B" * 86 + "==").model_dump_json().encode()
    yield (
        make_dial(
            _server_key(),
            session_id=SESSION,
            relay_url=f"wss://node-2.example.no/relay/{SESSION}",
            relay_token="t" * 40,
            public_url=SERVER_URL,
        )
        .model_dump_json()
        .encode()
    )
    yield json.dumps(
        {"type": "welcome", "machine_id": str(SESSION), "heartbeat_seconds": 30}
    ).encode()
    yield json.dumps({"type": "cut", "session_id": str(SESSION), "reason": "revoked"}).encode()


def _agent_seeds() -> Iterable[bytes]:
    info = MachineInfo(hostname="pc-1", os="Linux", users=["kari"], agent_version="0.1.0")
    yield Hello(machine_id=SESSION, signature="A" * 86 + "==", info=info).model_dump_json().encode()
    yield (
        SupportHello(
            session_id=SESSION,
            token="t" * 43,
            public_key="A" * 43 + "=",
            signature="A" * 86 + "==",
            client_version="0.1.0",
        )
        .model_dump_json()
        .encode()
    )
    yield (
        SessionEvent(session_id=SESSION, action="file.moved", details={"name": "a.txt", "size": 3})
        .model_dump_json()
        .encode()
    )
    yield json.dumps({"type": "report", "info": info.model_dump()}).encode()


# --- installer package ---------------------------------------------------------------------


def _package_outcome(data: bytes) -> None:
    result = refuses(lambda: pkg.read_package(data, now=NOW), pkg.PackageRejected)
    if result is not None:
        assert len(result.server_public_key) == 32
        assert pkg.check_server_url(result.server_url) == result.server_url


def package(data: bytes) -> None:
    """A package file as the installer reads it: InstallerPackage or PackageRejected."""
    _package_outcome(data)


def package_signed(data: bytes) -> None:
    """A package whose payload is the input, signed by the key it names: the fuzzer gets
    past the signature to the URL, dates and fields behind it."""
    public = _server_key().public_key().public_bytes_raw()
    envelope = {
        "format": pkg.FORMAT,
        "version": pkg.VERSION,
        "payload": pkg.b64e(data),
        "signature": pkg.b64e(_server_key().sign(pkg.CONTEXT + data)),
    }
    _package_outcome(json.dumps(envelope).encode())
    # The same payload carrying the key that signed it, whatever else it says.
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return
    if isinstance(body, dict):
        body["server_public_key"] = pkg.b64e(public)
        payload = json.dumps(body).encode()
        envelope["payload"] = pkg.b64e(payload)
        envelope["signature"] = pkg.b64e(_server_key().sign(pkg.CONTEXT + payload))
        _package_outcome(json.dumps(envelope).encode())


def _package_file() -> bytes:
    return pkg.build_package(
        _server_key(),
        server_url=SERVER_URL,
        enrolment_token="e" * 43,
        group="Resepsjon",
        organisation="Blåbærlia legekontor",
        expires_at=NOW + timedelta(days=3),
        package_id=str(SESSION),
    )


def _package_seeds() -> Iterable[bytes]:
    yield _package_file()


def _payload_seeds() -> Iterable[bytes]:
    envelope = json.loads(_package_file())
    yield pkg.b64d(envelope["payload"])


# --- the Support client's stamp ---------------------------------------------------------------

_BINARY = b"\x7fELF" + bytes(60)


@cache
def _stamp_path() -> Path:
    # tmpfs where there is one: the target writes a file per input.
    shm = Path("/dev/shm")
    handle, name = tempfile.mkstemp(
        prefix="fjernhjelp-fuzz-stamp-", dir=shm if shm.is_dir() else None
    )
    os.close(handle)
    atexit.register(Path(name).unlink, missing_ok=True)
    return Path(name)


def _stamp_outcome(data: bytes) -> None:
    path = _stamp_path()
    path.write_bytes(data)
    result = refuses(lambda: stamps.read_stamp(path), stamps.StampRefused)
    if result is not None:
        assert len(result.server_public_key) == 32


def stamp(data: bytes) -> None:
    """A Support client file as it reads itself: Stamp or StampRefused."""
    _stamp_outcome(data)


def stamp_signed(data: bytes) -> None:
    """A stamp whose payload is the input, with lengths that add up and a signature by
    the key the payload names when it names the harness's."""
    payload = data[: stamps.MAX_PAYLOAD]
    signature = _server_key().sign(stamps.CONTEXT + hashlib.sha256(_BINARY).digest() + payload)
    trailer = stamps.TRAILER.pack(len(_BINARY), len(payload), 1, 0, stamps.MAGIC)
    _stamp_outcome(_BINARY + payload + signature + trailer)


def _stamp_seeds() -> Iterable[bytes]:
    yield stamps.stamp(_BINARY, SERVER_URL, _server_key())


def _stamp_payload_seeds() -> Iterable[bytes]:
    stamped = stamps.stamp(_BINARY, SERVER_URL, _server_key())
    _, size, *_ = stamps.TRAILER.unpack(stamped[-stamps.TRAILER.size :])
    yield stamped[len(_BINARY) : len(_BINARY) + size]
    yield struct.pack(">I", 0)


# --- the SAS reveal (docs/tunnel.md §18) ----------------------------------------------------

_NONCE = hashlib.sha256(b"fuzz sas nonce").digest()


def sas_reveal(data: bytes) -> None:
    """The technician's first control message as the Support client reads it: the
    nonce HELLO committed to, or ValueError (not JSON) / SasRevealInvalid."""

    def reveal() -> bytes:
        return sas.nonce_from_reveal(decode_json(data), sas.commitment(_NONCE))

    nonce = refuses(reveal, ValueError)  # SasRevealInvalid is a ValueError
    if nonce is not None:
        assert nonce == _NONCE


def _sas_seeds() -> Iterable[bytes]:
    yield json.dumps(sas.reveal_message(_NONCE)).encode()
    yield json.dumps(sas.reveal_message(bytes(32))).encode()


TARGETS = [
    Target(
        "control-from-server", control_from_server, _server_seeds, max_len=70_000, json_input=same
    ),
    Target("control-from-agent", control_from_agent, _agent_seeds, max_len=70_000, json_input=same),
    Target("package", package, _package_seeds, max_len=70_000, json_input=same),
    Target("package-signed", package_signed, _payload_seeds, max_len=8192, json_input=same),
    Target("stamp", stamp, _stamp_seeds, max_len=8192),
    Target("stamp-signed", stamp_signed, _stamp_payload_seeds, max_len=4200, json_input=same),
    Target("sas-reveal", sas_reveal, _sas_seeds, max_len=4096, json_input=same),
]
