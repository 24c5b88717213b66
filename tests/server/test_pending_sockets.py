"""A source's allowance of sockets that have not authenticated (server/ws_guard.py):
cut by its silent sockets, restored once their strikes are old, and bounded in memory
however many sources strike."""

from __future__ import annotations

from fjernhjelp.server.ws_guard import Cap, PendingSockets, SilenceRule


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_source_struck_often_enough_keeps_only_its_allowance_until_the_strikes_are_old() -> None:
    clock = _Clock()
    pending = PendingSockets(8, 100, SilenceRule(strikes=3, window_seconds=60, allowance=1), clock)
    assert [pending.strike("192.0.2.7") for _ in range(3)] == [False, False, True]
    assert pending.admit("192.0.2.7") is None  # its allowance: one
    assert pending.admit("192.0.2.7") is Cap.SILENT
    assert Cap.SILENT.http_status.startswith("429")
    # Its neighbour in IPv4 is another source; in IPv6 a /64 is one.
    assert pending.admit("192.0.2.8") is None and pending.admit("192.0.2.8") is None
    for _ in range(3):
        pending.strike("2001:db8:1:2::1")
    assert pending.admit("2001:db8:1:2::ffff") is None
    assert pending.admit("2001:db8:1:2:aaaa::1") is Cap.SILENT
    clock.now += 60
    # A minute after the first strike, the window is over: the whole allowance again.
    assert pending.admit("192.0.2.7") is None
    assert pending.count("192.0.2.7") == 2


def test_strikes_spread_thinner_than_the_rule_never_cut() -> None:
    clock = _Clock()
    pending = PendingSockets(8, 100, SilenceRule(strikes=3, window_seconds=60, allowance=1), clock)
    for _ in range(5):
        pending.strike("192.0.2.7")
        pending.strike("192.0.2.7")
        clock.now += 61  # two a minute, the rule is three
    assert all(pending.admit("192.0.2.7") is None for _ in range(8))
    assert pending.admit("192.0.2.7") is Cap.ADDRESS


def test_strikes_of_many_sources_cost_bounded_memory_the_oldest_forgotten_first() -> None:
    rule = SilenceRule(strikes=1, window_seconds=60, allowance=1, max_sources=100)
    pending = PendingSockets(8, 10_000, rule, _Clock())
    for n in range(1000):
        pending.strike(f"10.0.{n // 256}.{n % 256}")
    assert len(pending._strikes) == 100
    # The latest hundred are remembered; the first are forgotten.
    last = "10.0.3.231"  # n = 999
    assert pending.admit(last) is None and pending.admit(last) is Cap.SILENT
    assert pending.admit("10.0.0.0") is None and pending.admit("10.0.0.0") is None
