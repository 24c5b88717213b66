"""The agents' reconnect back-off spreads a node's agents coming back: jitter from the
first retry on, a ceiling that doubles to its cap, and a reset after a stable link."""

from __future__ import annotations

import random
from collections import Counter

from fjernhjelp.agent.backoff import STABLE_AFTER, Backoff


def test_the_first_retry_of_many_agents_is_spread_not_synchronised() -> None:
    rng = random.Random(13)
    first = [Backoff(rng=rng).next_delay() for _ in range(20000)]
    assert all(0 <= d <= 1.0 for d in first)
    # Spread over the whole first second: no tenth of it holds more than 15 %.
    buckets = Counter(min(int(d * 10), 9) for d in first)
    assert len(buckets) == 10 and max(buckets.values()) < 0.15 * len(first)


def test_the_ceiling_doubles_to_the_cap_and_resets() -> None:
    backoff = Backoff(rng=random.Random(1))
    ceilings = []
    for _ in range(10):
        ceilings.append(min(backoff.cap, backoff.base * 2**backoff.attempt))
        assert backoff.next_delay() <= ceilings[-1]
    assert ceilings[:4] == [1, 2, 4, 8] and ceilings[-1] == 60
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_after_a_stable_link_the_back_off_starts_over_and_not_after_a_short_one() -> None:
    backoff = Backoff(rng=random.Random(2))
    for _ in range(5):
        backoff.after(1.0)
    # Failed attempts and links that dropped at once keep the ceiling growing ...
    assert backoff.attempt == 5
    backoff.after(STABLE_AFTER / 2)
    assert backoff.attempt == 6
    # ... a link that held starts it over: the next wait is within the first second.
    assert backoff.after(STABLE_AFTER + 1) <= 1.0 and backoff.attempt == 1
