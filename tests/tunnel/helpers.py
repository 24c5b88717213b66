"""Building blocks for tunnel tests: keys, tickets, and a tunnel pair with a relay in
the middle that a test can make hostile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fjernhjelp.tunnel import opening as session
from fjernhjelp.tunnel.handshake import raw_public
from fjernhjelp.tunnel.mux import StreamRequest, Tunnel, TunnelOptions
from fjernhjelp.tunnel.replay import MemoryReplayCache
from fjernhjelp.tunnel.tickets import Party, Permission, Ticket, issue_ticket, technician_key_hash
from fjernhjelp.tunnel.transport import Transport, TransportClosed, memory_transport_pair

MACHINE = "3f2b8c1e-5a4d-4e6f-9a1b-2c3d4e5f6a7b"


@dataclass
class World:
    """The keys of one test: the server's, one agent's, one technician's ephemeral."""

    server: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    agent: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    ephemeral: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    replay: MemoryReplayCache = field(default_factory=MemoryReplayCache)

    def ticket(self, **changes: Any) -> Ticket:
        now = int(time.time())
        base = Ticket(
            session_id="sess-0001",
            machine_id=MACHINE,
            technician=Party("tech-17", "Kari Nordmann"),
            vendor_org=Party("org-vendor", "Journalsystemer AS"),
            customer_org=Party("org-customer", "Blåbærlia legekontor"),
            permissions=frozenset({Permission.VIEW, Permission.TERMINAL, Permission.FILES}),
            consent_required=True,
            issued_at=now,
            expires_at=now + 120,
            technician_key_sha256=technician_key_hash(raw_public(self.ephemeral)),
            grant_id="grant-9",
            agreement_ref="Databehandleravtale 2024-03, punkt 4.2",
        )
        return replace(base, **changes)

    def token(self, **changes: Any) -> str:
        return issue_ticket(self.server, self.ticket(**changes))


# A tamper function sees (index, message) for one direction, index 0 being the handshake
# message, and returns the messages to pass on instead.
Tamper = Callable[[int, bytes], list[bytes]]


def passthrough(index: int, message: bytes) -> list[bytes]:
    return [message]


async def _copy(src: Transport, dst: Transport, tamper: Tamper, hold_open: bool) -> None:
    index = 0
    try:
        while True:
            message = await src.recv()
            for out in tamper(index, message):
                await dst.send(out)
            index += 1
    except TransportClosed:
        pass
    finally:
        if not hold_open:  # a relay passes a close on; a dead network path does not
            await src.close()
            await dst.close()


@dataclass
class Pair:
    technician: Tunnel
    agent: Tunnel
    relay: list[asyncio.Task[None]]
    requests: list[StreamRequest]


async def allow_shell_and_files(request: StreamRequest) -> bool:
    return request.service in ("shell", "files", "chat")


async def open_pair(
    world: World | None = None,
    *,
    to_agent: Tamper = passthrough,
    to_technician: Tamper = passthrough,
    authorize: Callable[[StreamRequest], Any] | None = None,
    options: TunnelOptions | None = None,
    agent_options: TunnelOptions | None = None,
    maxsize: int = 16,
    hold_open: bool = False,
    ticket: dict[str, Any] | None = None,
    technician_random: bytes | None = None,
) -> Pair:
    """A technician and an agent connected through an in-memory relay."""
    world = world or World()
    token = world.token(**(ticket or {}))
    tech_end, relay_a = memory_transport_pair(maxsize)
    relay_b, agent_end = memory_transport_pair(maxsize)
    relay = [
        asyncio.create_task(_copy(relay_a, relay_b, to_agent, hold_open)),
        asyncio.create_task(_copy(relay_b, relay_a, to_technician, hold_open)),
    ]
    requests: list[StreamRequest] = []

    async def decide(request: StreamRequest) -> bool:
        requests.append(request)
        if authorize is None:
            return await allow_shell_and_files(request)
        return bool(await authorize(request))

    async with asyncio.timeout(10):
        agent_task = asyncio.create_task(
            session.accept(
                agent_end,
                server_key=world.server.public_key(),
                identity=world.agent,
                machine_id=MACHINE,
                replay_cache=world.replay,
                authorize=decide,
                options=agent_options or options,
            )
        )
        try:
            technician = await session.connect(
                tech_end,
                ticket=token,
                ephemeral=world.ephemeral,
                agent_identity=world.agent.public_key(),
                options=options,
                random=technician_random,
            )
        except BaseException:
            # Collect the agent's side of the failure too, so no task dies unobserved.
            await asyncio.gather(agent_task, return_exceptions=True)
            for task in relay:
                task.cancel()
            raise
        agent = await agent_task
    return Pair(technician, agent, relay, requests)


async def closed_within(tunnel: Tunnel, seconds: float = 10) -> Any:
    async with asyncio.timeout(seconds):
        return await tunnel.wait_closed()
