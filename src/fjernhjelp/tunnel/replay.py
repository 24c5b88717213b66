"""Session ids an agent has accepted, so a ticket opens at most one tunnel.

A replayed HELLO could not finish the handshake anyway (it takes the technician's
ephemeral private key to answer the first record), so the cache is a second line: it
keeps an agent from being made to ask for consent twice on one ticket.
"""

from __future__ import annotations

from typing import Protocol

from fjernhjelp.tunnel.limits import TICKET_CLOCK_LEEWAY


class ReplayCacheFull(Exception):
    """More unexpired session ids than the cache holds; the agent refuses (try later)
    rather than forget one."""


class ReplayCache(Protocol):
    def remember(self, session_id: str, expires_at: int, now: float) -> bool:
        """Record ``session_id`` atomically; False if it was already there. It need only
        be kept until ``expires_at`` plus the clock leeway, when the ticket dies anyway."""
        ...


class MemoryReplayCache:
    """The replay cache of one agent process. An agent that restarts forgets it; a ticket
    lives at most MAX_TICKET_LIFETIME, which bounds what a restart re-opens."""

    def __init__(self, capacity: int = 4096, leeway: int = TICKET_CLOCK_LEEWAY) -> None:
        self._capacity = capacity
        self._leeway = leeway
        self._until: dict[str, float] = {}

    def remember(self, session_id: str, expires_at: int, now: float) -> bool:
        if session_id in self._until and self._until[session_id] > now:
            return False
        if len(self._until) >= self._capacity:
            self._until = {sid: t for sid, t in self._until.items() if t > now}
            if len(self._until) >= self._capacity:
                raise ReplayCacheFull()
        self._until[session_id] = expires_at + self._leeway
        return True

    def __len__(self) -> int:
        return len(self._until)
