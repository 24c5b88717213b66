"""Group commit: work that arrives while a write is under way goes into the next write.

Nothing waits for a timer: a lone login is written at once; logins that arrive during
that write (a node's agents coming back) are written together as soon as it ends, so the
batch size follows the load. Hand-written because what it batches is ours: an asyncio
queue of items, each with the future its caller awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from fjernhjelp.logs import fault

_log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class BatchFailed(Exception):
    """The batch this item was in did not commit: nothing of it was kept."""


class GroupCommit(Generic[T, R]):
    """Runs ``write`` on everything submitted since the last write began.

    ``write`` takes the batch and returns one result per item (in order) after its commit.
    When it raises, ``retry`` decides: False fails every caller of the batch with
    BatchFailed (they refuse and are retried by their peer); True keeps the batch and
    writes it again, waiting ``retry_delay`` (for what has happened already, e.g. a link
    that ended: its record must not be dropped).
    """

    def __init__(
        self,
        write: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        name: str,
        max_batch: int = 500,
        retry: bool = False,
        retry_delay: float = 1.0,
    ) -> None:
        self._write = write
        self._name = name
        self._max = max_batch
        self._retry = retry
        self._retry_delay = retry_delay
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Write ``item`` with whatever else is pending; its result after the commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if self._runner is None or self._runner.done() or self._runner.get_loop() is not loop:
            # First use, or an app served again on a new event loop (tests): the event and
            # the runner belong to the loop they were made on.
            self._wake = asyncio.Event()
            self._pending = [(i, f) for i, f in self._pending if f.get_loop() is loop]
            self._runner = asyncio.create_task(self._run())
        self._pending.append((item, future))
        self._wake.set()
        return await future

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[: self._max], self._pending[self._max :]
                await self._write_batch(batch)

    async def _write_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        while True:
            try:
                results = await self._write(items)
            except Exception as exc:
                # One short line, every time: a batch fails on every retry while the
                # database is away, and the driver's message can quote a row.
                _log.error(
                    "%s: a batch of %d was not written: %s", self._name, len(items), fault(exc)
                )
                if self._retry:
                    await asyncio.sleep(self._retry_delay)
                    continue
                for _, future in batch:
                    if not future.done():
                        future.set_exception(BatchFailed(fault(exc)))
                return
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
            return

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
