"""The relay: pairs the technician's and the agent's sockets for one session and copies
the bytes between them, which it cannot read (the tunnel is end-to-end encrypted).

What the relay does know and enforces: who may join (each end's one-time relay token is
checked by the caller before ``join``), how long the first end waits for the second, a
maximum message size, and "cut" (revocation, the end user's button, an operator). It
counts bytes each way for the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from fjernhjelp import metrics
from fjernhjelp.tunnel.limits import MAX_RECORD

_log = logging.getLogger(__name__)

# Every message after the join is a tunnel record or a handshake message, which is
# smaller; anything bigger is not ours (docs/tunnel.md, "Limits").
MAX_MESSAGE = MAX_RECORD

# Fairness between sessions (docs/BENCHMARKS.md, "The relay under load"). A pipe whose
# source always has a message ready (a bulk copy) would otherwise copy everything the
# server has read for it without ever giving the event loop back: a pipe yields after
# passing this many bytes in one turn, so every other session's next message waits for
# at most one quantum per busy session. Buffering stays bounded per session: a pipe holds
# one message at a time and reads the next only once the other end took it (the server
# stops reading a socket whose messages are not being taken, and a send waits while the
# other end's socket buffer is full).
QUANTUM = 64 * 1024


class Role(enum.StrEnum):
    TECHNICIAN = "technician"
    AGENT = "agent"

    @property
    def other(self) -> Role:
        return Role.AGENT if self is Role.TECHNICIAN else Role.TECHNICIAN


class EndClosed(Exception):
    """The socket behind a relay end closed."""


class EndSentTooBig(EndClosed):
    """The socket behind a relay end sent a message over ``MAX_MESSAGE`` (an end that
    refuses it before buffering it says so this way, rather than handing it over)."""


class RelayEnd(Protocol):
    async def recv(self) -> bytes: ...  # raises EndClosed

    async def send(self, data: bytes) -> None: ...  # raises EndClosed

    async def close(self, code: int, reason: str) -> None: ...


@runtime_checkable
class SplicingEnd(RelayEnd, Protocol):
    """An end that can pass its frames straight to another end of its own kind, in the
    socket's callbacks, without a task and a coroutine hop per message
    (server/relay_listener.py). Both ends of a pair must be of this kind; otherwise the
    relay copies through ``recv``/``send`` as for any end."""

    def splice(self, to: SplicingEnd, direction: Direction) -> None: ...


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    PEER_GONE = 4000
    PAIR_TIMEOUT = 4008
    CUT = 4003
    DUPLICATE = 4009
    TOO_BIG = 1009


@dataclass
class Outcome:
    session_id: str
    paired: bool
    reason: str  # why it ended: technician_closed, agent_closed, cut:<why>, pair_timeout, ...
    bytes_from_technician: int = 0
    bytes_from_agent: int = 0


@dataclass
class _Pair:
    session_id: str
    ends: dict[Role, RelayEnd] = field(default_factory=dict)
    paired: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    counts: dict[Role, int] = field(default_factory=lambda: {Role.TECHNICIAN: 0, Role.AGENT: 0})
    reason: str | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Set once both ends have been told how the session ended: neither caller of join
    # returns before (its socket would otherwise be dropped without a close frame, which
    # its peer sees as 1006 instead of the code, e.g. 4003 for a cut).
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def finish(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.done.set()


class Direction:
    """One direction of a spliced pair: what its source end reports to the relay."""

    __slots__ = ("_pair", "source")

    def __init__(self, pair: _Pair, source: Role) -> None:
        self._pair = pair
        self.source = source

    @property
    def live(self) -> bool:
        """False once the session is ending (a cut, the other end gone): pass no more."""
        return not self._pair.done.is_set()

    def count(self, size: int) -> None:
        self._pair.counts[self.source] += size

    def end(self, why: str) -> None:
        """``why``: closed, message_too_big or error, as the pipes below say it."""
        self._pair.finish(f"{self.source}_{why}")


class DuplicateEnd(Exception):
    """A second socket tried to take a role that is already taken in this session."""


class Relay:
    def __init__(
        self,
        *,
        pair_timeout: float = 30.0,
        on_paired: Callable[[str], Awaitable[None]] | None = None,
        on_end: Callable[[Outcome], Awaitable[None]] | None = None,
    ) -> None:
        self._pairs: dict[str, _Pair] = {}
        self._pair_timeout = pair_timeout
        self._on_paired = on_paired
        self._on_end = on_end

    def live_sessions(self) -> list[str]:
        return list(self._pairs)

    def live_bytes(self) -> dict[str, int]:
        """Bytes passed so far by the sessions still here, by the end that sent them."""
        totals = {str(role): 0 for role in Role}
        for pair in self._pairs.values():
            for role, count in pair.counts.items():
                totals[str(role)] += count
        return totals

    async def join(self, session_id: str, role: Role, end: RelayEnd) -> Outcome | None:
        """Hold ``end`` until the session is over. Returns the outcome to the end that
        closes the session (exactly one of the two calls); the other gets None."""
        pair = self._pairs.setdefault(session_id, _Pair(session_id))
        if role in pair.ends:
            await end.close(CloseCode.DUPLICATE, "role already taken")
            raise DuplicateEnd(session_id)
        pair.ends[role] = end
        if role.other in pair.ends:
            pair.paired.set()
            tech, agent = pair.ends[Role.TECHNICIAN], pair.ends[Role.AGENT]
            if isinstance(tech, SplicingEnd) and isinstance(agent, SplicingEnd):
                tech.splice(agent, Direction(pair, Role.TECHNICIAN))
                agent.splice(tech, Direction(pair, Role.AGENT))
            else:
                pair.tasks = [
                    asyncio.create_task(self._pipe(pair, Role.TECHNICIAN)),
                    asyncio.create_task(self._pipe(pair, Role.AGENT)),
                ]
            if self._on_paired is not None:
                await self._on_paired(session_id)
        else:
            try:
                await asyncio.wait_for(pair.paired.wait(), self._pair_timeout)
            except TimeoutError:
                pair.finish("pair_timeout")
        await pair.done.wait()
        return await self._settle(pair, role)

    async def _pipe(self, pair: _Pair, source: Role) -> None:
        src, dst = pair.ends[source], pair.ends[source.other]
        counts = pair.counts
        turn = 0
        try:
            while True:
                data = await src.recv()
                size = len(data)
                if size > MAX_MESSAGE:
                    pair.finish(f"{source}_message_too_big")
                    return
                counts[source] += size
                await dst.send(data)
                turn += size
                if turn >= QUANTUM:
                    turn = 0
                    await asyncio.sleep(0)  # the others' turn (QUANTUM above)
        except EndSentTooBig:
            pair.finish(f"{source}_message_too_big")
        except EndClosed:
            pair.finish(f"{source}_closed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken socket must end the session, not the server
            _log.warning("relay %s: %s pipe failed: %s", pair.session_id, source, exc)
            pair.finish(f"{source}_error")

    async def _settle(self, pair: _Pair, role: Role) -> Outcome | None:
        # Whichever caller gets here first closes both ends and reports; the other
        # returns None. The event loop is single-threaded, so the pop is the lock.
        if self._pairs.get(pair.session_id) is not pair:
            await pair.closed.wait()
            return None
        del self._pairs[pair.session_id]
        reason = pair.reason or "closed"
        try:
            for task in pair.tasks:
                task.cancel()
            for task in pair.tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            reason = pair.reason or "closed"
            code = _close_code(reason)
            for end in pair.ends.values():
                with contextlib.suppress(Exception):
                    await end.close(code, reason[:120])
        finally:
            pair.closed.set()  # also if this caller is cancelled: the other must not hang
        outcome = Outcome(
            session_id=pair.session_id,
            paired=pair.paired.is_set(),
            reason=reason,
            bytes_from_technician=pair.counts[Role.TECHNICIAN],
            bytes_from_agent=pair.counts[Role.AGENT],
        )
        metrics.relay_ended(
            outcome.paired, reason, outcome.bytes_from_technician, outcome.bytes_from_agent
        )
        if self._on_end is not None:
            await self._on_end(outcome)
        return outcome

    def cut(self, session_id: str, why: str) -> bool:
        """End a session now (revocation, the end user's button). True if it was here."""
        pair = self._pairs.get(session_id)
        if pair is None:
            return False
        pair.paired.set()  # release a lone waiting end too
        pair.finish(f"cut:{why}")
        return True


def _close_code(reason: str) -> int:
    if reason.startswith("cut:"):
        return CloseCode.CUT
    if reason == "pair_timeout":
        return CloseCode.PAIR_TIMEOUT
    if reason.endswith("message_too_big"):
        return CloseCode.TOO_BIG
    if reason.endswith("_closed"):
        return CloseCode.PEER_GONE
    return CloseCode.NORMAL
