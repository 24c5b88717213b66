"""The audit log is append-only and hash-chained; tampering is found and named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fjernhjelp.audit.log import Actor, Outcome, SecretInAuditDetails, record
from fjernhjelp.audit.verify import verify_chain


def _fill(db, n: int = 5) -> None:
    for i in range(n):
        record(
            db, "test.event", Outcome.INFO, actor=Actor.system(), details={"i": i, "ord": "blåbær"}
        )
    db.commit()


def _drop_guard(db) -> None:
    # What an intruder with owner rights would do first.
    if db.get_bind().dialect.name == "postgresql":
        # (conftest re-enables it for the next test: the PostgreSQL database is reused)
        db.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    else:
        db.execute(text("DROP TRIGGER audit_events_no_update"))
        db.execute(text("DROP TRIGGER audit_events_no_delete"))
    db.commit()


def _cli_verify(settings) -> subprocess.CompletedProcess[str]:
    # The command runs against a live database; it must not wait for our session.
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "fjernhjelp",
            "audit",
            "verify",
            "--database-url",
            settings.effective_database_url,
            "--data-dir",
            str(settings.data_dir),
        ],
        capture_output=True,
        text=True,
    )


def test_intact_chain_verifies(db, settings) -> None:
    _fill(db)
    assert verify_chain(db).ok
    db.rollback()
    result = _cli_verify(settings)
    assert result.returncode == 0 and "5 events" in result.stdout


def test_database_refuses_update_and_delete_of_events(db) -> None:
    _fill(db, 2)
    for stmt in (
        "UPDATE audit_events SET reason = 'x' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 2",
    ):
        with pytest.raises(DBAPIError):
            db.execute(text(stmt))
        db.rollback()


@pytest.mark.parametrize(
    "tamper, bad_seq",
    [
        ("UPDATE audit_events SET details = '{}' WHERE seq = 3", 3),
        ("UPDATE audit_events SET outcome = 'success' WHERE seq = 2", 2),
        ("DELETE FROM audit_events WHERE seq = 3", 3),
        ("DELETE FROM audit_events WHERE seq = 5", 5),  # the newest event, the easiest to miss
        ("UPDATE audit_events SET seq = seq + 100 WHERE seq IN (2, 3)", 2),
    ],
    ids=["edit-details", "edit-outcome", "delete-middle", "delete-last", "reorder"],
)
def test_tampering_is_found_and_named(db, settings, tamper: str, bad_seq: int) -> None:
    _fill(db)
    _drop_guard(db)
    db.execute(text(tamper))
    db.commit()
    result = verify_chain(db)
    db.rollback()
    assert not result.ok and result.first_bad_seq == bad_seq
    cli = _cli_verify(settings)
    assert cli.returncode == 1
    assert f"broken at event {bad_seq}" in " ".join(cli.stderr.split())


def test_swapping_two_events_is_found(db) -> None:
    _fill(db)
    _drop_guard(db)
    rows = db.execute(
        text("SELECT seq, details FROM audit_events WHERE seq IN (2, 4) ORDER BY seq")
    ).all()
    db.execute(text("UPDATE audit_events SET details = :d WHERE seq = 2"), {"d": rows[1].details})
    db.execute(text("UPDATE audit_events SET details = :d WHERE seq = 4"), {"d": rows[0].details})
    db.commit()
    assert verify_chain(db).first_bad_seq == 2


def test_secrets_are_refused_in_details(db) -> None:
    with pytest.raises(SecretInAuditDetails):
        record(db, "test", Outcome.INFO, actor=Actor.system(), details={"password": "x"})
    with pytest.raises(SecretInAuditDetails):
        record(db, "test", Outcome.INFO, actor=Actor.system(), details={"nested": {"otp": "x"}})


def test_rolled_back_change_leaves_no_event(db) -> None:
    _fill(db, 1)
    record(db, "test.rolled_back", Outcome.INFO, actor=Actor.system())
    db.rollback()
    _fill(db, 1)
    assert verify_chain(db).checked == 2


def test_export_writes_json_lines(db, settings) -> None:
    _fill(db, 3)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fjernhjelp",
            "audit",
            "export",
            "--database-url",
            settings.effective_database_url,
            "--data-dir",
            str(settings.data_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    events = [json.loads(line) for line in out]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert events[0]["details"] == {"i": 0, "ord": "blåbær"}
    assert events[1]["prev_hash"] == events[0]["hash"]


def test_concurrent_appends_keep_one_chain(state) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def append(i: int) -> None:
        with state.db_sessions() as db:
            record(db, "test.concurrent", Outcome.INFO, actor=Actor.system(), details={"i": i})
            db.commit()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(append, range(40)))
    with state.db_sessions() as db:
        result = verify_chain(db)
    assert result.ok and result.checked == 40
