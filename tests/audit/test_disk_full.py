"""The disk full just when an audit event is written: the action is refused, not done
unrecorded.

SQLite: the database lives on a small tmpfs of its own, filled to the last byte by a
file beside it, so the commit that carries the change and its event fails for want of
room exactly as on a full disk (SQLITE_FULL). PostgreSQL: filling the disk under the
machine's server is not ours to do, so the insert into audit_events fails the way
PostgreSQL fails when it cannot extend a file (SQLSTATE 53100 disk_full), raised by a
trigger on that table for the length of the test.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.audit.verify import verify_chain
from fjernhjelp.portal.models import MachineGroup
from tests.conftest import Backend
from tests.portal.web import Api
from tests.portal.world import build_world

TMPFS_SIZE = "8m"


@pytest.fixture
def database_url(backend: Backend, tmp_path: Path) -> Iterator[str]:
    """As everywhere, but a SQLite database gets a small file system of its own."""
    if backend.name != "sqlite":
        yield backend.fresh_url(tmp_path)
        return
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(small)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        target = small / "fjernhjelp.db"
        shutil.copyfile(backend.template, target)
        yield f"sqlite:///{target}"
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


class Disk:
    """Makes the database's storage full, and frees it again."""

    def __init__(self, backend: str, engine: Engine) -> None:
        self.backend = backend
        self.engine = engine
        self.filler: Path | None = None

    def fill(self) -> None:
        if self.backend == "sqlite":
            self._fill_tmpfs()
        else:
            self._fail_audit_inserts()

    def free(self) -> None:
        if self.filler is not None:
            self.filler.unlink()
            self.filler = None
        if self.backend != "sqlite":
            with self.engine.begin() as conn:
                conn.execute(text("DROP TRIGGER IF EXISTS fjh_test_disk_full ON audit_events"))
                conn.execute(text("DROP FUNCTION IF EXISTS fjh_test_disk_full()"))

    def _fill_tmpfs(self) -> None:
        database = Path(str(make_url(str(self.engine.url)).database))
        # An empty write-ahead log: the next commit must grow it, and finds no room. (A
        # log reused from its start would overwrite room it already has.)
        with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "a reader kept the log from being emptied"
        self.filler = database.parent / "filler"
        with self.filler.open("wb", buffering=0) as fh:
            for size in (1 << 20, 4096, 1):
                while True:
                    try:
                        fh.write(b"\0" * size)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC
                        break

    def _fail_audit_inserts(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE FUNCTION fjh_test_disk_full() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'could not extend file: No space left on device' "
                    "USING ERRCODE = 'disk_full'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER fjh_test_disk_full BEFORE INSERT ON audit_events "
                    "FOR EACH ROW EXECUTE FUNCTION fjh_test_disk_full()"
                )
            )


@pytest.fixture
def disk(backend: Backend, state, db) -> Iterator[Disk]:  # type: ignore[no-untyped-def]
    made = Disk(backend.name, state.engine)
    yield made
    db.rollback()  # the test's snapshot would hold off dropping the trigger
    made.free()


def test_a_change_is_refused_when_its_audit_event_finds_no_room(
    client, db, state, disk: Disk
) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, state)
    admin = Api(client, world.gp_admin)
    db.rollback()
    events_before = db.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    db.rollback()  # hold no snapshot: the log can then be emptied

    disk.fill()
    r = admin.post("/groups", {"name": "Resepsjonen"})

    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"]
    body = r.json()
    assert body["reason"] == "storage_full"
    assert "Nothing was done" in body["detail"]
    db.rollback()
    named = select(MachineGroup).where(MachineGroup.name == "Resepsjonen")
    assert db.execute(named).first() is None
    assert db.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == events_before

    # Room again: the same request is done, with its event, and the chain holds.
    db.rollback()
    disk.free()
    r = admin.post("/groups", {"name": "Resepsjonen"})
    assert r.status_code == 201, r.text
    db.rollback()
    created = db.execute(
        select(AuditEvent).where(AuditEvent.action == "group.created").order_by(AuditEvent.seq)
    ).scalars()
    assert any("Resepsjonen" in (event.details or "") for event in created)
    assert verify_chain(db).ok
