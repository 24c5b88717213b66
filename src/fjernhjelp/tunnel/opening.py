"""Opening a tunnel over a transport: the technician's ``connect`` and the agent's
``accept``. These move the handshake's bytes and hand the keys to a ``Tunnel``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fjernhjelp.tunnel.errors import AgentRefusal, HandshakeError, HandshakeTimeout, TunnelClosed
from fjernhjelp.tunnel.handshake import AgentHandshake, TechnicianHandshake
from fjernhjelp.tunnel.mux import DEFAULT_SERVICES, Authorize, Tunnel, TunnelOptions, TunnelStats
from fjernhjelp.tunnel.replay import ReplayCache
from fjernhjelp.tunnel.tickets import Ticket
from fjernhjelp.tunnel.transport import Transport, TransportClosed


async def connect(
    transport: Transport,
    *,
    ticket: str,
    ephemeral: X25519PrivateKey,
    agent_identity: Ed25519PublicKey,
    options: TunnelOptions | None = None,
    random: bytes | None = None,
) -> Tunnel:
    """Technician side. ``ephemeral`` is the key whose public half's SHA-256 the server
    put in ``ticket``; ``agent_identity`` is the key the server listed for the machine.
    ``random`` is HELLO's ``random_t``: fresh unless it carries a SAS commitment
    (``sas.commitment(nonce)``).

    Raises Refused (the agent said no, with a code), AgentKeyMismatch, BadAgentSignature,
    MalformedHandshake or HandshakeTimeout; the transport is closed after any of them."""
    options = options or TunnelOptions()
    handshake = TechnicianHandshake(
        ticket=ticket, ephemeral=ephemeral, agent_identity=agent_identity, random=random
    )
    hello = handshake.hello()
    try:
        async with asyncio.timeout(options.handshake_timeout):
            await transport.send(hello)
            reply = await transport.recv()
        keys = handshake.receive(reply)
    except TimeoutError:
        await transport.close()
        raise HandshakeTimeout("the agent did not answer the HELLO") from None
    except TransportClosed as exc:
        await transport.close()
        raise HandshakeError("the transport closed during the handshake") from exc
    except HandshakeError:
        await transport.close()
        raise
    stats = TunnelStats(bytes_sent=len(hello), bytes_received=len(reply))
    tunnel = Tunnel(transport, keys, options, stats=stats)
    tunnel.start()
    return tunnel


async def accept(
    transport: Transport,
    *,
    server_key: Ed25519PublicKey,
    identity: Ed25519PrivateKey,
    machine_id: str,
    replay_cache: ReplayCache,
    authorize: Authorize,
    services: Collection[str] = DEFAULT_SERVICES,
    policy: Callable[[Ticket], None] | None = None,
    options: TunnelOptions | None = None,
    clock: Callable[[], float] = time.time,
) -> Tunnel:
    """Agent side: answer one HELLO. Returns once the technician has proved it holds the
    session keys; ``tunnel.ticket`` is the verified ticket.

    ``authorize`` decides each stream the technician opens (check the ticket's
    permissions there); ``policy`` may raise PolicyRefusal to refuse the ticket itself.
    Raises AgentRefusal (after sending REFUSE; ``.code``, ``.detail``, ``.ticket`` and
    ``__cause__`` are for the audit), HandshakeTimeout or HandshakeError."""
    options = options or TunnelOptions()
    handshake = AgentHandshake(
        server_key=server_key,
        identity=identity,
        machine_id=machine_id,
        replay_cache=replay_cache,
        policy=policy,
    )
    try:
        async with asyncio.timeout(options.handshake_timeout):
            hello = await transport.recv()
            try:
                reply = handshake.receive_hello(hello, clock())
            except AgentRefusal as refusal:
                with contextlib.suppress(TransportClosed):
                    await transport.send(refusal.message)
                raise
            await transport.send(reply)
    except TimeoutError:
        await transport.close()
        raise HandshakeTimeout("no HELLO from the technician") from None
    except TransportClosed as exc:
        await transport.close()
        raise HandshakeError("the transport closed during the handshake") from exc
    except AgentRefusal:
        await transport.close()
        raise
    assert handshake.keys is not None and handshake.ticket is not None
    stats = TunnelStats(bytes_sent=len(reply), bytes_received=len(hello))
    tunnel = Tunnel(
        transport,
        handshake.keys,
        options,
        ticket=handshake.ticket,
        authorize=authorize,
        services=services,
        stats=stats,
    )
    tunnel.start()
    try:
        async with asyncio.timeout(options.handshake_timeout):
            await tunnel.established()
    except TimeoutError:
        await tunnel.close()
        raise HandshakeTimeout("the technician sent no first record") from None
    except TunnelClosed as exc:
        raise HandshakeError(f"the technician did not confirm the keys: {exc}") from exc
    return tunnel
