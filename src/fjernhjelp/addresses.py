"""What one source of traffic holds, for counting what it does: an IPv4 address as it
is, an IPv6 address by its /64 (whoever holds one address of a /64 usually holds the
whole prefix and could rotate through it). Used by the Support codes' guessing limits
(auth/throttle.py) and the caps on unauthenticated sockets (server/ws_guard.py)."""

from __future__ import annotations

import ipaddress


def source_prefix(address: str) -> str:
    """``address`` itself, or its /64 if it is an IPv6 address; text that is no address
    is returned as it is."""
    if ":" not in address:
        return address  # not IPv6: no parsing on the hot path of a login
    try:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    except ValueError:
        return address


__all__ = ["source_prefix"]
