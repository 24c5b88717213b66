"""Opening a tunnel to a machine from the technician's side (the CLI).

Asks the server for a session (sending only the SHA-256 of a fresh X25519 key's public
half is not enough for the server to impersonate us: the private half never leaves this
process), dials the relay, and runs the handshake, which checks the agent's identity key
against the one the server listed for the machine.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fjernhjelp.technician.api import Api, ApiError
from fjernhjelp.tunnel import Tunnel, WebSocketTransport, connect, sas
from fjernhjelp.tunnel.limits import MAX_RECORD


class MachineNotFound(Exception):
    pass


@dataclass
class OpenedSession:
    session_id: uuid.UUID
    tunnel: Tunnel
    websocket: Any
    permissions: list[str]
    consent_required: bool

    async def close(self) -> None:
        await self.tunnel.close()
        await self.websocket.close()


def resolve_machine(api: Api, name: str) -> dict[str, Any]:
    """A machine by id, or by host name when that name is unambiguous."""
    machines = api.get("/machines")
    try:
        wanted = uuid.UUID(name)
        matches = [m for m in machines if uuid.UUID(m["id"]) == wanted]
    except ValueError:
        matches = [m for m in machines if m["hostname"].lower() == name.lower()]
    if len(matches) != 1:
        raise MachineNotFound(
            f"no machine named {name!r}" if not matches else f"{name!r} is ambiguous; use its id"
        )
    return matches[0]


async def open_session(
    api: Api,
    machine_id: str,
    *,
    on_control: Callable[[dict[str, Any]], None] | None = None,
) -> OpenedSession:
    ephemeral = X25519PrivateKey.generate()
    public = ephemeral.public_key().public_bytes_raw()
    granted = await asyncio.to_thread(
        api.post,
        "/sessions",
        {"machine_id": machine_id, "technician_key": base64.b64encode(public).decode()},
    )
    ws, tunnel = await _join_relay(granted, ephemeral)
    if on_control is not None:
        asyncio.get_running_loop().create_task(_pump_control(tunnel, on_control))
    return OpenedSession(
        uuid.UUID(granted["session_id"]),
        tunnel,
        ws,
        granted["permissions"],
        granted["consent_required"],
    )


@dataclass
class OpenedSupport(OpenedSession):
    """A Support session's tunnel, with the words to read to the end user (tunnel.sas)."""

    sas: str = ""
    sas_digits: str = ""


async def open_support_session(
    api: Api,
    support_id: str,
    *,
    on_control: Callable[[dict[str, Any]], None] | None = None,
) -> OpenedSupport:
    """The tunnel to the end user's one-time client for the caller's Support session.

    As :func:`open_session`, and: HELLO's random is the commitment to a fresh nonce, and
    the nonce is revealed as the first control message once the tunnel is open
    (docs/tunnel.md §18), so both ends can show the same three words. The client's key
    is one the server recorded when the client logged in: only the words, compared over
    the telephone, show that no one sits between the two ends."""
    ephemeral = X25519PrivateKey.generate()
    public = ephemeral.public_key().public_bytes_raw()
    granted = await asyncio.to_thread(
        api.post,
        f"/support-sessions/{support_id}/tunnel",
        {"technician_key": base64.b64encode(public).decode()},
    )
    nonce = sas.new_nonce()
    ws, tunnel = await _join_relay(granted, ephemeral, random=sas.commitment(nonce))
    try:
        # connect() returns after the first record (the PING): now the reveal, before
        # anything else.
        await tunnel.control.send_json(sas.reveal_message(nonce))
    except BaseException:
        await ws.close()
        raise
    if on_control is not None:
        asyncio.get_running_loop().create_task(_pump_control(tunnel, on_control))
    return OpenedSupport(
        uuid.UUID(granted["session_id"]),
        tunnel,
        ws,
        granted["permissions"],
        granted["consent_required"],
        sas=sas.sas_text(tunnel.transcript_hash, nonce),
        sas_digits=sas.sas_digits(tunnel.transcript_hash, nonce),
    )


async def _join_relay(
    granted: dict[str, Any], ephemeral: X25519PrivateKey, *, random: bytes | None = None
) -> tuple[websockets.ClientConnection, Tunnel]:
    """Join the relay with the granted token and open the tunnel to the listed key (an
    agent's enrolled key, or the key a Support client logged in with)."""
    ws = await websockets.connect(
        granted["relay_url"],
        max_size=MAX_RECORD + 1024,
        compression=None,
        open_timeout=20,
        ping_interval=None,
    )
    try:
        await ws.send(json.dumps({"role": "technician", "token": granted["relay_token"]}))
        end_key = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(granted["agent_identity_key"])
        )
        tunnel = await connect(
            WebSocketTransport(ws),
            ticket=granted["ticket"],
            ephemeral=ephemeral,
            agent_identity=end_key,
            random=random,
        )
    except BaseException:
        await ws.close()
        raise
    return ws, tunnel


async def _pump_control(tunnel: Tunnel, on_control: Callable[[dict[str, Any]], None]) -> None:
    try:
        while True:
            on_control(await tunnel.control.recv_json())
    except Exception:  # the tunnel ended; the caller learns that from its own stream
        return


__all__ = [
    "ApiError",
    "MachineNotFound",
    "OpenedSession",
    "OpenedSupport",
    "open_session",
    "open_support_session",
    "resolve_machine",
]
