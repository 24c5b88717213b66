"""The Python agent end of a browser test: a ticket bound to the page's ephemeral key,
a real ``fjernhjelp.tunnel.accept`` behind the relay, and the services a test offers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.client import connect as ws_connect

from fjernhjelp.server.relay import Role
from fjernhjelp.tunnel import Channel, ChannelClosed, StreamRequest, Tunnel, TunnelClosed, accept
from fjernhjelp.tunnel.handshake import raw_public
from fjernhjelp.tunnel.limits import MAX_RECORD
from fjernhjelp.tunnel.transport import WebSocketTransport
from tests.e2e.js.harness import Harness
from tests.tunnel.helpers import World

Service = Callable[[Channel, StreamRequest], Awaitable[None]]


async def echo(channel: Channel, request: StreamRequest) -> None:
    with contextlib.suppress(ChannelClosed):
        while True:
            await channel.send(await channel.recv())


async def source(channel: Channel, request: StreamRequest) -> None:
    """Sends params.count messages of params.size random bytes, then a last message with
    the SHA-256 (hex) of all of them, and waits for the technician to close."""
    digest = hashlib.sha256()
    for _ in range(request.params["count"]):
        chunk = secrets.token_bytes(request.params["size"])
        digest.update(chunk)
        await channel.send(chunk)
    await channel.send(digest.hexdigest().encode())
    with contextlib.suppress(ChannelClosed):
        await channel.recv()


async def sink(channel: Channel, request: StreamRequest) -> None:
    """Hashes what arrives until an empty message, then answers with the SHA-256 (hex)."""
    digest, total = hashlib.sha256(), 0
    while message := await channel.recv():
        digest.update(message)
        total += len(message)
    await channel.send(json.dumps({"sha256": digest.hexdigest(), "size": total}).encode())


@dataclass
class AgentSide:
    """One session: keys, ticket, relay tokens, and once started, the agent's tunnel."""

    harness: Harness
    services: dict[str, Service]
    allowed: set[str] = field(default_factory=set)
    world: World = field(default_factory=World)
    identity: Ed25519PrivateKey | None = None  # sign with another key than the listed one
    control_messages: list[dict[str, Any]] = field(default_factory=list)
    session_id: str = field(default_factory=lambda: "sess-" + secrets.token_hex(6))
    tunnel: Tunnel | None = None
    error: BaseException | None = None
    requests: list[StreamRequest] = field(default_factory=list)
    closed: TunnelClosed | None = None
    received_control: list[Any] = field(default_factory=list)
    _settled: asyncio.Event = field(default_factory=asyncio.Event)
    # When set, streams wait for consent() before the agent decides them, as the real
    # agent holds them while it asks the end user.
    consent_required: bool = False
    _consent: asyncio.Event = field(default_factory=asyncio.Event)

    def issue(self, technician_key_b64: str, **ticket: Any) -> dict[str, Any]:
        """What the server's POST /api/v1/sessions would answer the page."""
        key = base64.b64decode(technician_key_b64)
        ticket.setdefault("technician_key_sha256", hashlib.sha256(key).digest())
        token = self.world.token(session_id=self.session_id, **ticket)
        technician_token, agent_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        self.harness.allow(technician_token, self.session_id, Role.TECHNICIAN)
        self.harness.allow(agent_token, self.session_id, Role.AGENT)
        self._agent_token = agent_token
        self.done = self.harness.spawn(self._run())
        return {
            "session_id": self.session_id,
            "ticket": token,
            "relay_url": self.harness.ws_url,
            "relay_token": technician_token,
            "agent_identity_key": base64.b64encode(raw_public(self.world.agent)).decode(),
            "permissions": sorted(self.allowed),
            "consent_required": self.consent_required,
            "expires_at": "2030-01-01T00:00:00Z",
        }

    async def _authorize(self, request: StreamRequest) -> bool:
        self.requests.append(request)
        if self.consent_required:
            await self._consent.wait()
        return request.service in self.allowed

    async def consent(self, state: str = "given", permissions: list[str] | None = None) -> None:
        """The end user answered: tell the page on the control stream (a Support client
        names the permissions the end user gave)."""
        await self.settled()
        assert self.tunnel is not None
        message: dict[str, Any] = {"type": "consent", "state": state}
        if permissions is not None:
            message["permissions"] = permissions
        await self.tunnel.control.send_json(message)
        if state == "given":
            self._consent.set()

    async def _run(self) -> None:
        ws = await ws_connect(self.harness.ws_url, compression=None, max_size=MAX_RECORD + 1024)
        await ws.send(json.dumps({"role": "agent", "token": self._agent_token}))
        try:
            self.tunnel = await accept(
                WebSocketTransport(ws),
                server_key=self.world.server.public_key(),
                identity=self.identity or self.world.agent,
                machine_id=self.world.ticket().machine_id,
                replay_cache=self.world.replay,
                authorize=self._authorize,
                services=set(self.services) | {"desktop", "shell", "files", "chat", "info"},
            )
        except BaseException as exc:
            self.error = exc
            return
        finally:
            self._settled.set()
        for message in self.control_messages:
            await self.tunnel.control.send_json(message)
        tasks = [asyncio.create_task(self._read_control())]
        try:
            while True:
                request, channel = await self.tunnel.accept_stream()
                service = self.services[request.service]
                tasks.append(asyncio.create_task(_guarded(service(channel, request))))
        except TunnelClosed as exc:
            self.closed = exc
        finally:
            for task in tasks:
                task.cancel()

    async def _read_control(self) -> None:
        assert self.tunnel is not None
        with contextlib.suppress(ChannelClosed):
            while True:
                self.received_control.append(await self.tunnel.control.recv_json())

    async def settled(self) -> None:
        """Returns once the handshake has succeeded or failed on the agent's side."""
        async with asyncio.timeout(40):
            await self._settled.wait()

    async def wait_closed(self) -> TunnelClosed:
        await self.settled()
        assert self.tunnel is not None, self.error
        async with asyncio.timeout(20):
            return await self.tunnel.wait_closed()


async def _guarded(work: Awaitable[None]) -> None:
    with contextlib.suppress(ChannelClosed):
        await work
