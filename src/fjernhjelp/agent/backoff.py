"""Reconnect delays: exponential with full jitter, so 20,000 agents that lost the server
at the same moment do not all come back at the same moment."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# A link that stayed up this long counts as healthy: the next failure starts the
# back-off from the beginning again.
STABLE_AFTER = 60.0


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

    def after(self, lasted: float) -> float:
        """The delay before the next attempt, after one that lasted ``lasted`` seconds:
        a link that held for STABLE_AFTER starts the back-off over. What the agent's
        control link does (agent/link.py) and what bench/_swarm.py's agents do."""
        if lasted > STABLE_AFTER:
            self.reset()
        return self.next_delay()
