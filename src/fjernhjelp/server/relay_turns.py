"""Fairness between the lean relay listener's sessions: which socket is light or heavy,
and the turns of the heavy ones (server/relay_listener.py reads and passes the frames;
server/relay_port.py holds the listener's shared state).

A socket whose read fills its buffer (a bulk copy) pauses and waits for the loop's next
pass before it is read again (TakesTurns._give_way): uvloop (libuv) would otherwise read
it again at once, up to 32 times, before serving any other socket. A socket is light
when it read under LIGHT_BYTES in its last LIGHT_WINDOW (a desktop: 0.6 MB/s at 30
frames of 19.5 KB; a terminal) and heavy otherwise; every socket starts heavy. With no
light session heard from within LIGHT_WINDOW, every waiting socket is read again on the
next pass, a full read each. While one is, the waiting sockets take turns, one
SHARED_TURN read per pass in order (Turns.turn), so a desktop's frame waits behind one
small read rather than a full read of every copy. What a socket may buffer is not
changed by any of this: at most one read and one partial frame per direction.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from fjernhjelp.server.relay import QUANTUM

READ = QUANTUM  # the most one read takes from a socket: a session's turn (relay.QUANTUM)
LIGHT_WINDOW = 0.25
LIGHT_BYTES = 1 << 20  # in LIGHT_WINDOW: 4 MiB/s
# While a light session is about: the one read the heavy sockets share per loop pass.
# A light session's message that arrives meanwhile waits for at most this much of the
# heavy ones' work (about 10 us), not a full read of each (2 copies: about 70 us).
# 32 KiB costs 25-30% less CPU per copied byte but waits longer on a busy machine
# (docs/BENCHMARKS.md, "The turns' CPU").
SHARED_TURN = 16 * 1024


class TakesTurns:
    """A socket's side of the turns: its weight, and its place in the queue. The socket
    provides ``_pause``, ``_resume``, ``_may_read`` and its ``_turns``."""

    _turns: Turns
    _loop: asyncio.AbstractEventLoop

    def _init_turns(self) -> None:
        # The most the next read takes (READ, or a shared turn's smaller read), and what
        # it read in its current window (from loop time _window_at).
        self._limit = READ
        self._light = False
        self._window_at = 0.0
        self._window_bytes = LIGHT_BYTES  # heavy until its first window says otherwise
        self._queued = False  # waiting in the listener's queue for its turn

    if TYPE_CHECKING:
        # What the socket provides (RelaySocket; _pause and _resume from
        # transport_calls.TransportCalls), declared for the type checker only: no stub
        # at run time that a change of base-class order could put first.
        def _may_read(self) -> bool: ...

        def _pause(self) -> None: ...

        def _resume(self) -> None: ...

    def _weighed(self, nbytes: int) -> None:
        """After a read of ``nbytes`` that passed its frames: weigh the socket, and if
        the read filled its buffer, give the other sessions a turn."""
        self._weigh(nbytes)
        if nbytes == self._limit:
            self._give_way()

    def _give_way(self) -> None:
        """The read filled its buffer, so more is waiting: the socket waits in the
        listener's queue and is read again once the loop has served whatever else is
        ready. A session that sends less than a read's worth at a time (a desktop) never
        waits for this: its reads end short and the loop moves on by itself."""
        self._pause()
        if not self._queued:  # it is, if its peer's resume_writing resumed it meanwhile
            self._queued = True
            self._turns.wait_turn(self)

    def _weigh(self, nbytes: int) -> None:
        """Light or heavy, from what this socket read in its last window; a light one's
        read tells the listener a light session is about (the heavy share their turns)."""
        now = self._loop.time()
        if now - self._window_at >= LIGHT_WINDOW:
            light = self._window_bytes < LIGHT_BYTES
            if light and not self._light:
                self._limit = READ
            self._light = light
            self._window_at, self._window_bytes = now, 0
        self._window_bytes += nbytes
        if self._window_bytes >= LIGHT_BYTES:
            self._light = False
        elif self._light:
            self._turns.light_at = now

    def take_turn(self, limit: int) -> bool:
        """Read again, at most ``limit`` a read; False if this socket is not to be read
        (gone, cut, or its peer's buffer full: the peer's resume_writing resumes it)."""
        self._limit = limit
        self._queued = False
        if self._may_read():
            self._resume()
            return True
        return False


class Turns:
    """The queue of the sockets waiting for their turn, and whether a light session is
    about (the loop time of a light session's last read)."""

    def __init__(self) -> None:
        self.waiting: deque[TakesTurns] = deque()
        self.light_at = -LIGHT_WINDOW
        self._scheduled = False

    def wait_turn(self, sock: TakesTurns) -> None:
        self.waiting.append(sock)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.turn)

    def turn(self) -> None:
        """One pass of the loop: the waiting sockets' reads (call_soon: after the reads
        this pass has already made, before the next poll)."""
        self._scheduled = False
        waiting = self.waiting
        loop = asyncio.get_running_loop()
        if loop.time() - self.light_at < LIGHT_WINDOW:
            while waiting and not waiting.popleft().take_turn(SHARED_TURN):
                pass  # gone or blocked: the next one has the turn
        else:
            while waiting:
                waiting.popleft().take_turn(READ)
        if waiting:
            self._scheduled = True
            loop.call_soon(self.turn)


__all__ = ["LIGHT_BYTES", "LIGHT_WINDOW", "READ", "SHARED_TURN", "TakesTurns", "Turns"]
