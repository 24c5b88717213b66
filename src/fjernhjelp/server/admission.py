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

The pace is learned, not configured: the logins answered per second during seconds in
which some were waiting all the time (the node's capacity, not the arrivals' rate); a
quiet second only raises it to what was answered in it. A node starts from
``START_RATE``, a pace every supported machine keeps.
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
START_RATE = 100.0  # logins per second, until the node has measured its own
# How fast the measured pace follows a busy second's (an exponential average).
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
        self._second = math.floor(clock())
        self._answered = 0  # in the current second
        self._idle = self.in_progress == 0  # was nothing waiting at some point of it?
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
        second = math.floor(self._clock())
        if second == self._second:
            return
        if second == self._second + 1 and self._answered:
            measured = float(self._answered)
            if self._idle:
                # Not busy throughout: what it answered is what came, a floor only.
                self.rate = max(self.rate, measured)
            else:
                self.rate = (1 - WEIGHT) * self.rate + WEIGHT * measured
        self._second = second
        self._answered = 0
        self._idle = self.in_progress == 0
