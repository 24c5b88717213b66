"""The agents' reconnect back-off spreads a node's agents coming back: jitter from the
first retry on, a ceiling that doubles to its cap, and a reset after a stable link."""

from __future__ import annotations

import random
from collections import Counter

from fjernhjelp.agent.backoff import STABLE_AFTER, Backoff, parse_retry_after


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


def test_a_busy_nodes_retry_after_is_what_the_agent_waits_jittered_and_bounded() -> None:
    backoff = Backoff(rng=random.Random(3))
    # Told 17 s: 17 s and up to one more of jitter, whatever the own ceiling (1 s here).
    delays = [Backoff(rng=random.Random(seed)).after(0.5, retry_after=17) for seed in range(200)]
    assert all(17 <= d <= 18 for d in delays)
    assert len({round(d, 3) for d in delays}) > 150  # spread, not one instant
    # Never sooner than the back-off's floor, never later than its cap.
    assert 1.0 <= backoff.after(0.5, retry_after=0) <= 2.0
    assert backoff.after(0.5, retry_after=86400) <= backoff.cap
    # The node answered and set the pace: its refusals do not grow the back-off ...
    assert backoff.attempt == 0
    # ... so an agent refused many times in a storm whose next attempt then fails
    # (the node stopped answering) waits the back-off's first ceiling, not 32 s.
    for _ in range(6):
        backoff.after(0.5, retry_after=5)
    assert backoff.after(20.0) <= backoff.base and backoff.attempt == 1


def test_retry_after_is_read_in_seconds_only() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(" 3 ") == 3.0
    # A date would be read against the agent's clock; nonsense and absurd values are ignored.
    for value in (None, "", "-1", "1.5", "Wed, 21 Oct 2026 07:28:00 GMT", "9999999"):
        assert parse_retry_after(value) is None
