"""Hold the test's own session back until the app has applied the revocations published
so far.

The app applies each revocation in its own thread (server/runtime.py: the consumer ends
the unpaired sessions it touches in a write transaction) while the test goes on. The
test's session is DEFERRED (conftest's ``db``): once a transaction of it has read, its
first write cannot wait for SQLite's write lock. SQLite answers "database is locked"
at once, whatever the busy timeout, while another connection holds the lock
(SQLITE_BUSY) or once another has committed since the read (SQLITE_BUSY_SNAPSHOT). A
test that revoked something and then wrote through ``world.db`` (an agreement: read the
terms, then insert) failed so when the consumer's write fell between its read and its
insert (a CI run under load). The app's own sessions take the lock at BEGIN and wait.

So each transaction of the test's session begins only once every consumer running has
applied every event published before it: what a test reads and writes then never
races the app's reaction to its own commits or to the requests it made.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from fjernhjelp.portal.revocations import Revocation, Unsubscribe
from fjernhjelp.server.runtime import AccessRuntime
from fjernhjelp.server.state import AppState

# Set in a session's info: its transactions wait (conftest's ``db``).
TEST_SESSION = "fjernhjelp_test_session"
WAIT_LIMIT = 120.0


class AppliedRevocations:
    """Per running consumer (keyed by its event loop), the published events it has not
    applied yet."""

    def __init__(self, state: AppState, runtime: AccessRuntime) -> None:
        self._state = state
        # Called when a transaction is about to wait (a test can tell that it did).
        self.on_wait: Callable[[], None] | None = None
        self._changed = threading.Condition()
        self._unapplied: dict[asyncio.AbstractEventLoop, list[Revocation]] = {}
        bus = state.revocations
        publish, subscribe_queue, apply = bus.publish, bus.subscribe_queue, runtime.apply

        def counted_publish(revocation: Revocation) -> None:
            # Noted before it is delivered, so no consumer can apply it unnoted.
            with self._changed:
                for unapplied in self._unapplied.values():
                    unapplied.append(revocation)
            publish(revocation)

        def counted_subscribe_queue(
            loop: asyncio.AbstractEventLoop,
        ) -> tuple[asyncio.Queue[Revocation], Unsubscribe]:
            with self._changed:
                self._unapplied[loop] = []
            queue, unsubscribe = subscribe_queue(loop)

            def counted_unsubscribe() -> None:
                unsubscribe()
                # A stopped consumer applies nothing more: nobody waits for it.
                with self._changed:
                    self._unapplied.pop(loop, None)
                    self._changed.notify_all()

            return queue, counted_unsubscribe

        async def counted_apply(revocation: Revocation) -> list[uuid.UUID]:
            try:
                return await apply(revocation)
            finally:
                with self._changed:
                    unapplied = self._unapplied.get(asyncio.get_running_loop(), [])
                    for i, queued in enumerate(unapplied):
                        if queued is revocation:
                            del unapplied[i]
                            break
                    self._changed.notify_all()

        # Instance attributes: the bus's commit hook, the runtime's start and its
        # consumer look these up at each call.
        bus.publish = counted_publish  # type: ignore[method-assign]
        bus.subscribe_queue = counted_subscribe_queue  # type: ignore[method-assign]
        runtime.apply = counted_apply  # type: ignore[method-assign]
        event.listen(state.readers, "after_begin", self._after_begin)

    def close(self) -> None:
        event.remove(self._state.readers, "after_begin", self._after_begin)

    def _after_begin(self, session: Session, _transaction: Any, _connection: Any) -> None:
        # BEGIN is DEFERRED: the snapshot is taken at the first read, after this.
        if session.info.get(TEST_SESSION):
            self.wait()

    def wait(self) -> None:
        """Until every running consumer has applied what was published so far. Not for
        the consumer on the calling thread's own loop: it cannot run while we wait."""
        try:
            own: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            own = None

        def applied() -> bool:
            return not any(u for loop, u in self._unapplied.items() if loop is not own)

        with self._changed:
            if applied():
                return
        if self.on_wait is not None:
            self.on_wait()
        with self._changed:
            # Bounded: a consumer that never applies is a failure to read, not a hang.
            if not self._changed.wait_for(applied, timeout=WAIT_LIMIT):
                raise AssertionError(f"the app applied no revocation in {WAIT_LIMIT} s")
