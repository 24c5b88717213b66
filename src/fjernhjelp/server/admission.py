"""Admission of agents' logins: a node answers the logins it can answer in time and tells
the rest when to come back.

When a node restarts, the agents it held come back within a second (agent/backoff.py)
to the node left. Each login costs a signature, a check of the agent's proof and its
share of a batch's transaction. A node that accepts more than it can answer before the
agent gives up (20 s for each answer, agent/link.py) spends itself on logins nobody
waits for any more, and their agents come back later and later with a growing back-off
(docs/BENCHMARKS.md, the fleet). Instead, while more logins are in progress than the
node answers in ``BUDGET`` seconds at the pace it has been answering them, a new
control-link upgrade is refused before any crypto or database work: HTTP 503 with a
Retry-After, which the agent honours (Backoff.after). The Retry-After values are handed
out in turn, the node's pace per second, after the time to answer those already in
progress: the refused agents come back spread over the time the node needs for them,
not all at once again.

The pace is learned, not configured: the logins answered per second over windows of
``WINDOW`` seconds in which some were waiting all the time (the node's capacity, not the
arrivals' rate); a window in which the node ran dry says nothing about its capacity and
changes nothing. Windows of several seconds, not one: logins are answered a batch at a
time (batches.py, up to 500 at once), and a one-second count that caught a batch's end
overstated the pace several times over, so the node admitted more than it answered in
time (bench/fleet.py: agents timed out). A node starts from ``START_RATE``, a pace every
supported machine keeps, and learns its own within a window of its first storm.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# Seconds of work a node takes on: a quarter of the agent's 20 s for an answer, so a
# login admitted at the limit is answered with room to spare for the pace's error and
# the node's other work, and enough that the node never runs dry while the refused
# agents come back.
BUDGET = 5.0
# Logins in progress that are always admitted: a lone agent is never told to wait.
FLOOR = 200
# Logins per second, until the node has measured its own. A node on this 2-core machine
# answers 700 or more a second on the lean listener (bench/fleet.py, 5,000 agents in
# 3.5 s across two nodes); at 100 a node that had not yet been busy for a whole window
# told a restart's agents to come back at 100 a second: 2,500 agents back in 28.9 s
# where the bare servers took 3.8 s. At 300 the limit is 1,500 logins in progress,
# answered within the agent's 20 s by any node that manages 75 a second.
START_RATE = 300.0
# Seconds over which the pace is measured, and how fast it follows a busy window's.
WINDOW = 5.0
WEIGHT = 0.5
# A Retry-After is never more than this: the agent's own back-off never waits longer.
MAX_RETRY_AFTER = 55


class LoginAdmission:
    """Counts the logins in progress on this node and decides whether one more is
    admitted (:meth:`refusal`). Used from the event loop only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.in_progress = 0
        self.rate = START_RATE
        self._window = clock()  # when the current window began
        self._answered = 0  # in the current window
        self._idle = True  # did the node run dry at some point of it?
        self._next_slot = 0.0  # when the next refused agent is told to come back

    @property
    def limit(self) -> int:
        """Logins in progress beyond which new ones are refused."""
        return max(FLOOR, int(self.rate * BUDGET))

    def refusal(self) -> int | None:
        """None to admit a new login; else the seconds its agent should wait (Retry-After).

        Only reads: the caller counts an admitted login with :meth:`begin`, once it
        serves it (a refused upgrade is not counted: it costs the node nothing more)."""
        self._tick()
        if self.in_progress < self.limit:
            return None
        now = self._clock()
        # After those in progress are answered, one second's worth at a time.
        slot = max(self._next_slot, now + self.in_progress / self.rate)
        self._next_slot = slot + 1 / self.rate
        return min(MAX_RETRY_AFTER, max(1, math.ceil(slot - now)))

    def begin(self) -> None:
        self._tick()
        self.in_progress += 1

    def end(self, answered: bool) -> None:
        """A login is over: ``answered`` when the node did its work for it (welcomed or
        refused after the check), not when its agent went away first."""
        self._tick()
        self.in_progress -= 1
        if answered:
            self._answered += 1
        if self.in_progress == 0:
            self._idle = True

    def _tick(self) -> None:
        now = self._clock()
        elapsed = now - self._window
        if elapsed < WINDOW:
            return
        if not self._idle and self._answered:
            # Busy throughout: what it answered is what it can answer.
            measured = self._answered / elapsed
            self.rate = (1 - WEIGHT) * self.rate + WEIGHT * measured
        self._window = now
        self._answered = 0
        self._idle = self.in_progress == 0
