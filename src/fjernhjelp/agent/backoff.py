"""Reconnect delays: exponential with full jitter, so 20,000 agents that lost the server
at the same moment do not all come back at the same moment; and, when a busy node says
when to come back (HTTP 503 with Retry-After, server/admission.py), that time instead,
bounded and jittered."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# A link that stayed up this long counts as healthy: the next failure starts the
# back-off from the beginning again.
STABLE_AFTER = 60.0


def parse_retry_after(value: str | None) -> float | None:
    """A Retry-After header's delay in seconds, or None when there is none we can use.

    Only the delay-seconds form: the nodes send no other, and an HTTP date would be read
    against the agent's own clock, which may be wrong by hours."""
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or len(value) > 6:
        return None
    return float(value)


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 60.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0

    def after(self, lasted: float, retry_after: float | None = None) -> float:
        """The delay before the next attempt, after one that lasted ``lasted`` seconds:
        a link that held for STABLE_AFTER starts the back-off over. What the agent's
        control link does (agent/link.py) and what bench/_swarm.py's agents do.

        ``retry_after``: the node refused the attempt and said when to come back. It
        chose that time to spread the agents it refused over what it can answer, so it
        is kept, not drawn from the back-off's own range: never sooner than ``base``
        (a node saying 0 does not make the agents spin), never later than ``cap`` (a
        node saying a day does not strand them), plus up to ``base`` of jitter so agents
        told the same second do not arrive in the same instant. The refusal does not
        advance the back-off: the node answered and set the pace, so it is not the
        failure the back-off is for (a node that does not answer). Counting it as one
        left agents refused a few times in a storm with a back-off of 16-32 s when
        their next attempt then timed out: the tail of the restart in
        docs/BENCHMARKS.md."""
        if lasted > STABLE_AFTER:
            self.reset()
        if retry_after is None:
            return self.next_delay()
        told = min(max(retry_after, self.base), self.cap - self.base)
        return told + self.rng.uniform(0, self.base)
