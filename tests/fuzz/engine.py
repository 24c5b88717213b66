"""The hypothesis engine: random and mutated-seed inputs, for CI and where atheris does
not install. Not coverage-guided; the seeds carry it past the first checks."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import Target


@st.composite
def _mutated(draw: st.DrawFn, seeds: tuple[bytes, ...]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(("flip", "cut", "insert", "repeat")))
        at = draw(st.integers(0, len(data)))
        if action == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif action == "insert":
            data[at:at] = draw(st.binary(max_size=16))
        elif action == "repeat" and data:
            piece = data[at : at + draw(st.integers(1, 32))]
            data[at:at] = piece * draw(st.integers(1, 64))
    return bytes(data)


def inputs(target: Target) -> st.SearchStrategy[bytes]:
    seeds = tuple(target.seeds())
    return st.one_of(st.binary(max_size=min(target.max_len, 512)), _mutated(seeds))


def check(target: Target, examples: int) -> int:
    """Run ``target`` on ``examples`` inputs (seeds first); the count of calls."""
    calls = 0

    @settings(
        max_examples=examples,
        deadline=None,  # a loaded CI machine; a hang is caught by the harness's bound
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs(target))
    def run(data: bytes) -> None:
        nonlocal calls
        calls += 1
        target.run(data)

    for seed in target.seeds():
        calls += 1
        target.run(seed)
    run()
    return calls


def run_for(name: str, seconds: float) -> int:
    from tests.fuzz.targets import TARGETS

    target = TARGETS[name]
    deadline = time.monotonic() + seconds
    total = 0
    while time.monotonic() < deadline:
        total += check(target, 500)
    return total
