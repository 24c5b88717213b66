"""Run a coroutine to completion from a synchronous test.

Not ``asyncio.run`` on the main thread: the browser tests keep one Playwright (sync API)
session open per test process, which marks the main thread's event loop as running, and
``asyncio.run`` then refuses to start there. A fresh thread has no running loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed to the calling thread, which raises it
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class LoopThread:
    """An event loop running in a thread of its own for the length of a ``with`` block:
    for a test that opens connections in one step and uses them in later ones (the
    sessions stay served between the steps), where the main thread's loop may be taken
    (see the module's docstring)."""

    def __enter__(self) -> LoopThread:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc_info: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on a fresh thread: for code that runs its own event loop
    (``asyncio.run``), called from a test whose thread may hold one (see above)."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(fn, *args, **kwargs).result()
