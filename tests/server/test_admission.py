"""A node's admission of agents' logins (server/admission.py): the logins it can answer in
time are admitted, the rest are told when to come back, spread at the node's own pace;
the pace is learned from busy seconds. On a clock of the test's own: no sleeps."""

from __future__ import annotations

from fjernhjelp.server import admission
from fjernhjelp.server.admission import LoginAdmission


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fill(gate: LoginAdmission, n: int) -> None:
    for _ in range(n):
        assert gate.refusal() is None
        gate.begin()


def test_logins_within_what_the_node_answers_in_time_are_admitted_the_rest_told_to_wait() -> None:
    clock = Clock()
    gate = LoginAdmission(clock)
    limit = gate.limit
    assert limit == max(admission.FLOOR, int(admission.START_RATE * admission.BUDGET))
    _fill(gate, limit)
    # One more: refused, told to come back once those in progress are answered.
    drain = limit / gate.rate
    told = [gate.refusal() for _ in range(int(gate.rate) * 3)]
    assert all(t is not None for t in told)
    assert told[0] == round(drain)
    # The refused are spread at the node's pace: one second's worth per second.
    per_second: dict[int, int] = {}
    for t in told:
        assert t is not None
        per_second[t] = per_second.get(t, 0) + 1
    seconds = sorted(per_second)
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds))) and len(seconds) <= 4
    assert all(count <= gate.rate + 1 for count in per_second.values())
    assert all(abs(per_second[s] - gate.rate) <= 1 for s in seconds[1:-1])
    # Refusals are not counted in progress: they cost the node nothing more.
    assert gate.in_progress == limit
    # A login over (answered or not) makes room for one more.
    gate.end(answered=False)
    assert gate.refusal() is None


def test_a_lone_agent_is_never_told_to_wait_and_nothing_is_told_beyond_the_cap() -> None:
    clock = Clock()
    gate = LoginAdmission(clock)
    assert gate.refusal() is None
    _fill(gate, gate.limit)
    for _ in range(100_000):
        retry_after = gate.refusal()
        assert retry_after is not None and 1 <= retry_after <= admission.MAX_RETRY_AFTER


def _window(gate: LoginAdmission, clock: Clock, answered: int, *, gone: int = 0) -> None:
    """One window of the node's work, logins waiting throughout: ``answered`` answered,
    ``gone`` whose agents went away first; each replaced by a new one."""
    for _ in range(answered):
        gate.end(answered=True)
        gate.begin()
    for _ in range(gone):
        gate.end(answered=False)
        gate.begin()
    clock.now += admission.WINDOW
    gate.refusal()


def test_the_pace_is_learned_from_busy_windows_only() -> None:
    clock = Clock()
    gate = LoginAdmission(clock)
    # A window in which the node ran dry, however much it answered (a batch's end can
    # answer 500 at once): no measure of what it can answer.
    _fill(gate, 500)
    for _ in range(500):
        gate.end(answered=True)
    clock.now += admission.WINDOW
    gate.refusal()
    assert gate.rate == admission.START_RATE
    # Busy windows answering 400 a second: the pace follows.
    _fill(gate, 200)
    for _ in range(4):
        _window(gate, clock, int(400 * admission.WINDOW))
    assert 350 < gate.rate <= 400
    assert gate.limit == int(gate.rate * admission.BUDGET)
    # A busy window answering 50 a second (the database slowed down): the pace drops.
    rate = gate.rate
    _window(gate, clock, int(50 * admission.WINDOW))
    assert gate.rate < rate * 0.6
    # Logins whose agents went away first are no measure of the node's pace.
    rate = gate.rate
    _window(gate, clock, 0, gone=50)
    assert gate.rate == rate
