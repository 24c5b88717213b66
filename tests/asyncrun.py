"""Run a coroutine to completion from a synchronous test.

Not ``asyncio.run`` on the main thread: the browser tests keep one Playwright (sync API)
session open per test process, which marks the main thread's event loop as running, and
``asyncio.run`` then refuses to start there. A fresh thread has no running loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
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
