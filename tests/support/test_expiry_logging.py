"""A housekeeping job that meets a database failure logs one short line, never the
statement's parameters nor the database's own text (which may quote the row): the
engine hides parameters, the job logs the failure's kinds only (logs.fault), and any
other line that carries a database error has its text withheld (logs.py)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from fjernhjelp.logs import WithholdDatabaseErrors, fault
from fjernhjelp.server.housekeeping import Housekeeping, Scheduled, support_expiry_job
from tests.asyncrun import run_async
from tests.portal.world import World
from tests.support.kit import make_code, row

SECRET = "hemmelig-kode-4711"


@contextlib.contextmanager
def _refusing_updates(world: World) -> Iterator[None]:
    """The database refuses to update a session, its message quoting the row's code
    digest (as a constraint's or a trigger's message may quote a row)."""
    conn = world.db.connection()
    sqlite = world.db.get_bind().dialect.name == "sqlite"
    if sqlite:
        conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE UPDATE ON remote_sessions BEGIN "
                f"SELECT RAISE(ABORT, 'refused {SECRET}'); END"
            )
        )
    else:
        conn.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"RAISE EXCEPTION 'refused {SECRET} %', encode(NEW.code_digest, 'hex'); END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE UPDATE ON remote_sessions "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )
    world.db.commit()
    try:
        yield
    finally:
        # The PostgreSQL schema outlives the test (its tables are only emptied).
        world.db.rollback()
        world.db.execute(text("DROP TRIGGER refuse" + ("" if sqlite else " ON remote_sessions")))
        if not sqlite:
            world.db.execute(text("DROP FUNCTION refuse()"))
        world.db.commit()


def test_a_job_that_meets_a_database_failure_logs_no_values(
    world: World, clock, caplog: pytest.LogCaptureFixture
) -> None:
    created = make_code(world)
    session_id = created.session.id
    session = row(world.db, session_id)
    digest = session.code_digest.hex() if session.code_digest else "unset"

    async def cut(*_: object) -> None:
        raise AssertionError("nothing ended, nobody to tell")

    housekeeping = Housekeeping(
        world.state,
        [Scheduled("support_expiry", support_expiry_job(world.state, cut), timedelta(1))],
    )
    clock.advance(minutes=world.state.settings.support_code_minutes + 1)
    with _refusing_updates(world), caplog.at_level(logging.DEBUG):
        assert not run_async(housekeeping.run_logged("support_expiry"))

    failures = [r for r in caplog.records if r.name == "fjernhjelp.server.housekeeping"]
    assert len(failures) == 1 and failures[0].levelno == logging.ERROR
    line = failures[0].getMessage()
    assert line.startswith("housekeeping job support_expiry failed: ")
    assert "in expire_codes" in line  # where it failed, for whoever investigates
    everything = caplog.text
    for value in (str(session_id), session_id.hex, digest, created.code, SECRET, "code_expired"):
        assert value not in everything
    # The session is as it was: nothing half-ended.
    world.db.rollback()
    assert row(world.db, session_id).status == session.status


def _failed_insert() -> IntegrityError:
    try:
        raise IntegrityError(
            "INSERT INTO tokens (hash) VALUES (?)",
            (SECRET,),
            sqlite3.IntegrityError(f"UNIQUE constraint failed: tokens.hash ({SECRET})"),
        )
    except IntegrityError as exc:
        return exc


def test_any_line_carrying_a_database_error_keeps_its_frames_not_its_text() -> None:
    exc = _failed_insert()
    record = logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", (), None
    )
    record.exc_info = (type(exc), exc, exc.__traceback__)
    argued = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", (exc,), None)
    handler_filter = WithholdDatabaseErrors()
    assert handler_filter.filter(record) and handler_filter.filter(argued)

    formatted = logging.Formatter().format(record)
    assert "_failed_insert" in formatted and "[message withheld]" in formatted
    assert SECRET not in formatted and SECRET not in argued.getMessage()
    assert fault(exc).startswith("IntegrityError sqlite3.IntegrityError")
