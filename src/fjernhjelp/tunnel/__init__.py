"""The end-to-end tunnel: tickets, handshake, framing, streams.

The same code runs at every end (agent, command-line client, tests); it imports neither
the server nor the agent. The browser implements the same specification (docs/tunnel.md).
"""

from fjernhjelp.tunnel.channel import Channel, ChannelClosed, memory_pair
from fjernhjelp.tunnel.codes import CloseCode, RefuseCode, StreamCode
from fjernhjelp.tunnel.errors import (
    AgentKeyMismatch,
    AgentRefusal,
    BadAgentSignature,
    HandshakeError,
    HandshakeTimeout,
    MessageTooLarge,
    Refused,
    StreamClosed,
    StreamRefused,
    TunnelClosed,
    TunnelError,
)
from fjernhjelp.tunnel.handshake import PolicyRefusal
from fjernhjelp.tunnel.mux import (
    DEFAULT_SERVICES,
    StreamRequest,
    Tunnel,
    TunnelOptions,
    TunnelStats,
)
from fjernhjelp.tunnel.opening import accept, connect
from fjernhjelp.tunnel.replay import MemoryReplayCache, ReplayCache, ReplayCacheFull
from fjernhjelp.tunnel.streams import Stream
from fjernhjelp.tunnel.tickets import (
    Party,
    Permission,
    Ticket,
    TicketError,
    issue_ticket,
    technician_key_hash,
    verify_ticket,
)
from fjernhjelp.tunnel.transport import (
    MemoryTransport,
    Transport,
    TransportClosed,
    WebSocketTransport,
    memory_transport_pair,
)

__all__ = [
    "DEFAULT_SERVICES",
    "AgentKeyMismatch",
    "AgentRefusal",
    "BadAgentSignature",
    "Channel",
    "ChannelClosed",
    "CloseCode",
    "HandshakeError",
    "HandshakeTimeout",
    "MemoryReplayCache",
    "MemoryTransport",
    "MessageTooLarge",
    "Party",
    "Permission",
    "PolicyRefusal",
    "RefuseCode",
    "Refused",
    "ReplayCache",
    "ReplayCacheFull",
    "Stream",
    "StreamClosed",
    "StreamCode",
    "StreamRefused",
    "StreamRequest",
    "Ticket",
    "TicketError",
    "Transport",
    "TransportClosed",
    "Tunnel",
    "TunnelClosed",
    "TunnelError",
    "TunnelOptions",
    "TunnelStats",
    "WebSocketTransport",
    "accept",
    "connect",
    "issue_ticket",
    "memory_pair",
    "memory_transport_pair",
    "technician_key_hash",
    "verify_ticket",
]
