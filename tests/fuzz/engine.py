"""The hypothesis engine: random and mutated-seed inputs, for CI and where atheris does
not install. Not coverage-guided; the seeds carry it past the first checks."""

from __future__ import annotations

import json
import time
import tracemalloc

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


@st.composite
def _nested(draw: st.DrawFn) -> bytes:
    # Deep nesting is the classic way past a recursive parser; random bytes and small
    # mutations never get there. The parsers bound their input (1 KiB for a shell OPEN,
    # 4 KiB for a file request): depths that just fit, and often no closing brackets,
    # which the descent never reaches anyway.
    depth = draw(st.sampled_from((1000, 1023, 2000, 4095)) | st.integers(1, 5000))
    opener, closer = draw(st.sampled_from(((b"[", b"]"), (b'{"a":', b"}"))))
    return opener * depth + (b"" if draw(st.booleans()) else closer * depth)


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities too: json.dumps writes them, json.loads reads them
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
# Objects with the field names the protocols use, holding values of any type.
_FIELDS = (
    "type",
    "text",
    "at",
    "op",
    "path",
    "size",
    "sha256",
    "choices",
    "default",
    "uid",
    "run_as",
    "account",
    "code",
    "message",
    "nonce",
    "version",
    "payload",
    "signature",
    "server_url",
    "server_public_key",
    "rows",
    "cols",
    "term",
    "service",
    "params",
)
_PROTOCOL_OBJECTS = st.dictionaries(st.sampled_from(_FIELDS), _JSON_VALUES, max_size=6)


# The classic hostile JSON, always tried on a target that reads JSON: nesting that just
# fits the parsers' size bounds (1 KiB, 4 KiB, more), numbers a float cannot hold, NaN,
# a lone surrogate, a huge integer. Random generation reaches these only rarely.
HOSTILE_JSON = (
    *(b"[" * depth for depth in (1000, 1023, 2000, 4095, 20_000)),
    b'{"a":' * 1000,
    b"[" * 1500 + b"]" * 1500,
    b"1e999",
    b"-1e999",
    b"NaN",
    b'"\\ud800"',
    b"9" * 5000,
    b'{"choices":[{"run_as":"user","account":"a","uid":1e999}],"default":"user"}',
    b'{"size":1e999,"offset":-1e999,"sha256":NaN,"uid":Infinity,"rows":1e999}',
)


def _json_texts() -> st.SearchStrategy[bytes]:
    values = st.one_of(_JSON_VALUES, _PROTOCOL_OBJECTS)
    return st.one_of(_nested(), values.map(lambda v: json.dumps(v).encode()))


def inputs(target: Target) -> st.SearchStrategy[bytes]:
    seeds = tuple(target.seeds())
    strategies = [st.binary(max_size=min(target.max_len, 512)), _mutated(seeds)]
    if target.json_input is not None:
        # Half the inputs: the framing is the easy part, what is inside it the hard one.
        json_inputs = _json_texts().map(target.json_input)
        strategies += [json_inputs, json_inputs]
    return st.one_of(strategies)


def check(target: Target, examples: int, memory_limit: int | None = None) -> int:
    """Run ``target`` on ``examples`` inputs (seeds first); the count of calls. With
    ``memory_limit`` (bytes; tracemalloc must be tracing) an input that makes the target
    allocate more than that at its peak is a finding: unbounded memory."""
    calls = 0

    def one(data: bytes) -> None:
        if memory_limit is None:
            target.run(data)
            return
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        target.run(data)
        _, peak = tracemalloc.get_traced_memory()
        assert peak - before <= memory_limit, f"{peak - before} bytes for {len(data)} of input"

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
        one(data)

    fixed = list(target.seeds())
    if target.json_input is not None:
        fixed += [target.json_input(text) for text in HOSTILE_JSON]
    for data in fixed:
        calls += 1
        one(data)
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
