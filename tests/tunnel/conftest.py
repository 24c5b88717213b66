"""Async tests here run each in a fresh event loop on a thread of their own.

Why not pytest-asyncio's runner: the end-to-end tests keep one Playwright (sync API)
session open for the whole test session, and Playwright marks its loop as running on
the main thread between calls. Every ``asyncio.Runner`` on that thread then refuses to
start ("cannot be called from a running event loop"), so any async test that lands on an
xdist worker after a browser test would fail. A thread has no running loop.
"""

from __future__ import annotations

import asyncio
import inspect
import threading

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            asyncio.run(pyfuncitem.obj(**kwargs))
        except BaseException as exc:  # handed to the main thread, which raises it
            outcome["error"] = exc

    # Daemon: if pytest-timeout fires in the main thread, a hung test cannot keep the
    # process alive.
    thread = threading.Thread(target=run, name=pyfuncitem.name, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return True
