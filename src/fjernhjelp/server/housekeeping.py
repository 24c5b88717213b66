"""Periodic jobs the server runs in the background (expired sessions, expiry sweeps,
signed audit checkpoints).

Each job is a plain function of (database session, now) that commits its own work; it
runs in a worker thread so the event loop (relay, agents) never waits for the database.
A failing job is logged and retried next round; it never stops the others. Its log line
is short and holds no message (logs.fault): a database error's text can quote the
statement's parameters or a row, and a job touches codes' HMACs and tokens' hashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fjernhjelp.audit import checkpoint_store
from fjernhjelp.auth import logins
from fjernhjelp.auth.models import Throttle
from fjernhjelp.auth.throttle import FORGET_AFTER
from fjernhjelp.logs import fault
from fjernhjelp.remote import support_expiry
from fjernhjelp.server.late_ends import LateEnds
from fjernhjelp.server.state import AppState

_log = logging.getLogger(__name__)

# What a job may hand back to run on the event loop once its transaction has
# committed (telling connected clients, which the worker thread cannot do).
FollowUp = Callable[[], Awaitable[None]]
Job = Callable[[Session, datetime], FollowUp | None]


@dataclass
class Scheduled:
    name: str
    job: Job
    every: timedelta


def purge_login_sessions(db: Session, now: datetime) -> None:
    removed = logins.purge_expired(db, now)
    db.commit()
    if removed:
        _log.info("purged %d expired login sessions", removed)


def purge_throttles(db: Session, now: datetime) -> None:
    db.execute(
        delete(Throttle).where(
            Throttle.last_failure_at < now - FORGET_AFTER,
            (Throttle.locked_until.is_(None)) | (Throttle.locked_until < now),
        )
    )
    db.commit()


def audit_checkpoint_job(state: AppState) -> Job:
    """Sign the audit chain's head (nothing new to sign: nothing is added)."""

    def make(db: Session, now: datetime) -> None:
        checkpoint_store.make_checkpoint(db, state.keys.signing, now)
        try:
            db.commit()
        except IntegrityError:
            db.rollback()  # another node signed the same head a moment earlier

    return make


def support_expiry_job(state: AppState, cut: Callable[[uuid.UUID, str], Awaitable[None]]) -> Job:
    """End Support sessions that ran out (remote/support_expiry.py); then cut each
    joined client's link, so the client hears it and exits."""
    lifetime = timedelta(minutes=state.settings.support_code_minutes)

    def expire(db: Session, now: datetime) -> FollowUp | None:
        ended = support_expiry.sweep(db, now, lifetime)
        db.commit()
        if not ended:
            return None
        _log.info("ended %d joined Support sessions whose tunnel never came", len(ended))

        async def tell() -> None:
            for session_id in ended:
                await cut(session_id, support_expiry.JOINED_EXPIRED)

        return tell

    return expire


def late_ends_job(late_ends: LateEnds) -> Job:
    """Record the session ends the database could not take when they happened
    (server/late_ends.py); nothing to do, nothing touches the database."""

    def record(db: Session, _now: datetime) -> None:
        if len(late_ends):
            written = late_ends.record(db)
            _log.info("recorded %d session ends that happened while the database was away", written)

    return record


LATE_ENDS_EVERY = timedelta(seconds=5)

DEFAULT_JOBS = [
    Scheduled("purge_login_sessions", purge_login_sessions, timedelta(minutes=5)),
    Scheduled("purge_throttles", purge_throttles, timedelta(hours=1)),
]


class Housekeeping:
    def __init__(self, state: AppState, jobs: list[Scheduled] | None = None) -> None:
        self._state = state
        self.jobs = list(DEFAULT_JOBS if jobs is None else jobs)
        interval = state.settings.audit_checkpoint_interval_seconds
        if jobs is None and interval > 0:
            every = timedelta(seconds=interval)
            self.jobs.append(Scheduled("audit_checkpoint", audit_checkpoint_job(state), every))
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, job: Scheduled) -> None:
        self.jobs.append(job)

    def run_now(self, name: str) -> FollowUp | None:
        """Run one job synchronously (tests, the CLI); what it hands back for the event
        loop is returned, not run."""
        job = next(j for j in self.jobs if j.name == name)
        with self._state.db_sessions() as db:
            return job.job(db, self._state.now())

    async def run(self, name: str) -> None:
        """Run one job as the timer does: in a worker thread, then its follow-up."""
        follow_up = await run_in_threadpool(self.run_now, name)
        if follow_up is not None:
            await follow_up()

    async def run_logged(self, name: str) -> bool:
        """:meth:`run`, a failure logged in one line instead of raised; whether it ran."""
        try:
            await self.run(name)
        except Exception as exc:
            _log.error("housekeeping job %s failed: %s", name, fault(exc))
            return False
        return True

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(job)) for job in self.jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _loop(self, job: Scheduled) -> None:
        while True:
            await asyncio.sleep(job.every.total_seconds())
            await self.run_logged(job.name)
