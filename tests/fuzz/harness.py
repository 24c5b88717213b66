"""What every fuzz target shares: the refusal check, a synchronous coroutine driver,
a persistent event loop for the stateful targets, and the test vectors as seeds."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

VECTORS = Path(__file__).resolve().parent.parent / "data" / "vectors"
# Bounded work: no input of a target may take longer than this (a hang is a finding).
# Generous, since the suite runs on a loaded machine; the fuzzers' own timeouts are
# tighter per input in the long pass (``-timeout``).
HANG_SECONDS = 20.0


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], Iterable[bytes]]
    max_len: int = 4096  # the fuzzers' input size cap: at least every seed's length
    # For a target whose input carries JSON: the input for a given JSON text, so the
    # hypothesis engine can aim JSON at it (deep nesting, odd numbers) past the framing.
    json_input: Callable[[bytes], bytes] | None = None


def same(payload: bytes) -> bytes:
    return payload


def framed(*messages: bytes) -> bytes:
    """Channel messages as the targets that take several read them: u16 length, bytes."""
    return b"".join(len(m).to_bytes(2, "big") + m for m in messages)


def refuses(call: Callable[[], T], *allowed: type[BaseException]) -> T | None:
    """``call()``'s result, or None when it raised one of ``allowed``. Anything else
    propagates: a crash, a wrong error type, RecursionError, MemoryError."""
    try:
        return call()
    except allowed:
        return None


def drive(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits on anything outside itself (an in-memory byte
    source) to the end, without an event loop; a coroutine that would block is a hang."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise AssertionError("the parser waited for input that will never come")


class BackgroundLoop:
    """One event loop on its own thread for the stateful targets: starting a loop per
    input would cost more than the input, and the browser tests may hold the main
    thread's loop in the same test process."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = HANG_SECONDS) -> T:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, daemon=True, name="fuzz").start()
                self._loop = loop
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise AssertionError(f"no result within {timeout} s: a hang") from None


LOOP = BackgroundLoop()


@cache
def tunnel_vectors() -> dict[str, Any]:
    return json.loads((VECTORS / "tunnel-v1.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def vector_bytes(*path: str) -> bytes:
    node: Any = tunnel_vectors()
    for key in path:
        node = node[key]
    return bytes.fromhex(node)
