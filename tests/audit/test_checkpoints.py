"""Signed checkpoints catch a history that whoever owns the database rewrote and re-hashed."""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from fjernhjelp.audit import checkpoint_store, forward
from fjernhjelp.audit.chain import event_hash, fields_of
from fjernhjelp.audit.checkpoint import (
    CHECKPOINT_CONTEXT,
    CheckpointError,
    file_bytes,
    parse_file,
    raw_public,
    sign,
    signed_bytes,
    verified,
    verify_signature,
)
from fjernhjelp.audit.checkpoint_models import AuditCheckpoint
from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.audit.models import AuditEvent, AuditHead
from fjernhjelp.audit.verify import verify_chain
from fjernhjelp.control.package import b64e, fingerprint
from fjernhjelp.server.housekeeping import Housekeeping
from fjernhjelp.tunnel.tickets import TICKET_CONTEXT
from tests.audit.test_chain import _drop_guard, _fill
from tests.audit.test_views import _api_token
from tests.helpers import make_org, make_user
from tests.server.test_pages_login import web_login

# --- the byte format ---------------------------------------------------------------------


def test_signed_bytes_follow_the_documented_layout() -> None:
    key = Ed25519PrivateKey.generate()
    public = raw_public(key.public_key())
    head = "ab" * 32
    message = signed_bytes(7, head, 1_800_000_000, public)
    assert message == (
        b"fjernhjelp audit checkpoint\x00"
        + b"\x01"
        + struct.pack(">Q", 7)
        + bytes.fromhex(head)
        + struct.pack(">Q", 1_800_000_000)
        + hashlib.sha256(public).digest()
    )
    assert len(message) == 28 + 1 + 8 + 32 + 8 + 32


def test_a_signature_from_another_role_or_key_or_over_other_values_is_refused(clock) -> None:
    key = Ed25519PrivateKey.generate()
    good = sign(key, 5, "cd" * 32, clock())
    verify_signature(good, key.public_key())
    # The same fields signed in the ticket's role: domain separation keeps it apart.
    body = signed_bytes(5, "cd" * 32, good.signed_at_unix, raw_public(key.public_key()))
    as_ticket = key.sign(TICKET_CONTEXT + body[len(CHECKPOINT_CONTEXT) :])
    forgeries = [
        good.__class__(5, "cd" * 32, good.signed_at, as_ticket),
        good.__class__(6, "cd" * 32, good.signed_at, good.signature),  # another count
        good.__class__(5, "ce" * 32, good.signed_at, good.signature),  # another head
        sign(Ed25519PrivateKey.generate(), 5, "cd" * 32, clock()),  # another key
    ]
    for forged in forgeries:
        with pytest.raises(CheckpointError):
            verify_signature(forged, key.public_key())


def test_the_file_names_its_key_and_is_checked_against_a_trusted_one(clock) -> None:
    key = Ed25519PrivateKey.generate()
    data = file_bytes([sign(key, 3, "01" * 32, clock())], key.public_key())
    document = json.loads(data)
    assert document["server_key"] == b64e(raw_public(key.public_key()))
    assert document["server_key_fingerprint"] == fingerprint(key.public_key())
    assert [c.seq for c in verified(parse_file(data), fingerprint(key.public_key()))] == [3]
    assert verified(parse_file(data), key.public_key())
    # A forger's own file verifies under the forger's key, never under the server's.
    forger = Ed25519PrivateKey.generate()
    forged = file_bytes([sign(forger, 3, "02" * 32, clock())], forger.public_key())
    with pytest.raises(CheckpointError, match="signed for server key"):
        verified(parse_file(forged), key.public_key())
    # Swapping the key in the file for the server's does not help the forger either.
    document = json.loads(forged)
    document["server_key"] = b64e(raw_public(key.public_key()))
    document["server_key_fingerprint"] = fingerprint(key.public_key())
    with pytest.raises(CheckpointError, match="not signed by the server key"):
        verified(parse_file(json.dumps(document).encode()), key.public_key())


# --- the attack --------------------------------------------------------------------------


def _cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "fjernhjelp",
            "audit",
            *args,
            "--database-url",
            settings.effective_database_url,
            "--data-dir",
            str(settings.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _rewrite_and_rehash(db, seq: int, details: str) -> None:
    """What an intruder owning the database does: change an event, then recompute the
    chain from there on and the head, so that plain verification passes again."""
    _drop_guard(db)
    events = db.execute(select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq))
    prev = db.execute(select(AuditEvent.hash).where(AuditEvent.seq == seq - 1)).scalar_one()
    rewritten = []
    for event in events.scalars().all():
        fields = fields_of(event)
        if event.seq == seq:
            fields["details"] = details
        new_hash = event_hash(prev, fields)
        rewritten.append((event.seq, fields["details"], prev, new_hash))
        prev = new_hash
    db.rollback()
    for number, body, prev_hash, new_hash in rewritten:
        db.execute(
            text("UPDATE audit_events SET details = :d, prev_hash = :p, hash = :h WHERE seq = :s"),
            {"d": body, "p": prev_hash, "h": new_hash, "s": number},
        )
    db.execute(text("UPDATE audit_head SET hash = :h WHERE id = 1"), {"h": prev})
    db.commit()


def test_a_rewritten_and_rehashed_history_fails_against_the_checkpoints(
    db, settings, tmp_path: Path
) -> None:
    _fill(db, 4)
    first = _cli(settings, "checkpoint")  # signs events 1-4
    assert first.returncode == 0, first.stderr
    assert "checkpoint at event 4" in first.stdout
    _fill(db, 4)
    file = tmp_path / "checkpoints.json"
    second = _cli(settings, "checkpoint", "-o", str(file))  # signs events 1-8
    assert second.returncode == 0, second.stderr
    assert [c["seq"] for c in json.loads(file.read_text())["checkpoints"]] == [4, 8]
    _fill(db, 2)  # events after the newest checkpoint are not covered by it

    intact = _cli(settings, "verify", "--checkpoint", str(file))
    assert intact.returncode == 0, intact.stderr
    assert "matches all 2 signed checkpoints" in " ".join(intact.stdout.split())

    before = db.execute(select(AuditEvent.details).where(AuditEvent.seq == 6)).scalar_one()
    _rewrite_and_rehash(db, 6, '{"i":99,"ord":"endret"}')
    assert verify_chain(db).ok  # the plain check is fooled, as the issue says
    db.rollback()
    plain = _cli(settings, "verify")
    assert plain.returncode == 0 and "10 events" in plain.stdout

    against = _cli(settings, "verify", "--checkpoint", str(file))
    assert against.returncode == 1
    said = " ".join(against.stderr.split())
    assert "first event that no longer matches: 8" in said
    assert "events up to 4 still match" in said and "events 5 to 8" in said
    assert db.execute(select(AuditEvent.details).where(AuditEvent.seq == 6)).scalar_one() != before


def test_cutting_the_end_and_rolling_the_head_back_is_found(db, settings, tmp_path: Path) -> None:
    _fill(db, 5)
    file = tmp_path / "c.json"
    assert _cli(settings, "checkpoint", "-o", str(file)).returncode == 0
    _drop_guard(db)
    kept = db.execute(select(AuditEvent.hash).where(AuditEvent.seq == 3)).scalar_one()
    db.execute(text("DELETE FROM audit_events WHERE seq > 3"))
    db.execute(text("UPDATE audit_head SET seq = 3, hash = :h WHERE id = 1"), {"h": kept})
    db.commit()
    assert _cli(settings, "verify").returncode == 0  # consistent, just shorter
    result = _cli(settings, "verify", "--checkpoint", str(file))
    assert result.returncode == 1
    assert "event 5 is missing" in " ".join(result.stderr.split())


def test_a_checkpoint_file_for_another_key_is_refused(db, settings, tmp_path: Path) -> None:
    _fill(db, 2)
    forger = Ed25519PrivateKey.generate()
    head = db.execute(select(AuditHead)).scalar_one()
    forged = tmp_path / "forged.json"
    forged.write_bytes(
        file_bytes([sign(forger, head.seq, head.hash, head_time(db))], forger.public_key())
    )
    db.rollback()
    result = _cli(settings, "verify", "--checkpoint", str(forged))
    assert result.returncode == 1 and "signed for server key" in " ".join(result.stderr.split())
    # With the forger's key named explicitly it is, of course, the forger's file that checks.
    forger_print = fingerprint(forger.public_key())
    named = _cli(settings, "verify", "--checkpoint", str(forged), "--server-key", forger_print)
    assert named.returncode == 0, named.stderr


def head_time(db):  # type: ignore[no-untyped-def]
    return db.execute(select(AuditEvent.occurred_at).order_by(AuditEvent.seq.desc())).scalar()


def test_verify_takes_the_key_by_fingerprint_without_the_key_file(
    db, settings, state, tmp_path: Path
) -> None:
    _fill(db, 3)
    file = tmp_path / "c.json"
    assert _cli(settings, "checkpoint", "-o", str(file)).returncode == 0
    key_file = settings.keys_dir / "signing.key"
    expected = fingerprint(state.keys.signing.public_key())
    key_file.rename(tmp_path / "elsewhere.key")  # verifying on a machine without the keys
    try:
        no_key = _cli(settings, "verify", "--checkpoint", str(file))
        assert no_key.returncode == 2 and "--server-key" in no_key.stderr
        assert not key_file.exists()  # verifying never makes a key
        ok = _cli(settings, "verify", "--checkpoint", str(file), "--server-key", expected)
        assert ok.returncode == 0, ok.stderr
    finally:
        (tmp_path / "elsewhere.key").rename(key_file)


# --- made on a timer, forwarded, downloaded ------------------------------------------------


def test_the_housekeeping_timer_signs_the_head_once_per_head(db, state) -> None:
    housekeeping = Housekeeping(state)
    assert "audit_checkpoint" in [j.name for j in housekeeping.jobs]
    housekeeping.run_now("audit_checkpoint")  # an empty log: nothing to sign
    _fill(db, 3)
    housekeeping.run_now("audit_checkpoint")
    housekeeping.run_now("audit_checkpoint")  # nothing new: no second checkpoint
    db.rollback()
    rows = db.execute(select(AuditCheckpoint)).scalars().all()
    assert [(r.seq, r.key_fingerprint) for r in rows] == [
        (3, fingerprint(state.keys.signing.public_key()))
    ]
    saved = checkpoint_store.all_checkpoints(db)
    verify_signature(saved[0], state.keys.signing.public_key())
    assert checkpoint_store.check_chain(db, saved).ok


def test_checkpoints_are_forwarded_with_the_audit_stream_after_commit_only(state, db) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(30)
    port = receiver.getsockname()[1]
    factory = state.db_sessions
    forward.install(factory, forward.SyslogForwarder(f"127.0.0.1:{port}"), "SHA256:test")
    try:
        with factory() as session:
            record(session, "test.event", Outcome.INFO, actor=Actor.system())
            session.commit()
        assert b" audit " in receiver.recv(65535)
        with factory() as session:
            checkpoint_store.make_checkpoint(session, state.keys.signing, state.now())
            session.rollback()  # rolled back: not sent
            made = checkpoint_store.make_checkpoint(session, state.keys.signing, state.now())
            session.commit()
        message = receiver.recv(65535).decode()
    finally:
        receiver.close()
    assert " fjernhjelp - checkpoint - " in message
    payload = json.loads(message.split(" - checkpoint - ", 1)[1])
    assert made is not None
    assert payload["seq"] == made.seq == 1 and payload["head"] == made.head
    assert payload["server_key_fingerprint"] == "SHA256:test"


def test_each_administrator_downloads_the_checkpoints_and_others_are_refused(
    client: TestClient, db, state, tmp_path: Path
) -> None:
    gp = make_org(db, "Legekontoret")
    vendor = make_org(db, "Leverandøren", receives=False)
    admin = make_user(db, state, gp, "gp-admin", admin=True, technician=False)
    tech = make_user(db, state, vendor, "tekniker")
    record(db, "portal.other", Outcome.SUCCESS, actor=Actor.system(), customer_org_id=vendor.id)
    db.commit()

    token = _api_token(client, admin)
    got = client.get("/api/v1/audit/checkpoints", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200, got.text
    checkpoints = verified(parse_file(got.content), state.keys.signing.public_key())
    # Count and head of the whole chain (which covers the download event itself), no events.
    assert set(json.loads(got.content)["checkpoints"][0]) == {
        "seq",
        "head",
        "signed_at",
        "signature",
    }
    db.rollback()
    assert checkpoint_store.check_chain(db, checkpoints).ok
    downloads = db.execute(
        select(AuditEvent).where(AuditEvent.action == "audit.checkpoints_downloaded")
    ).scalars()
    assert [(e.outcome, e.actor_name) for e in downloads] == [("success", "gp-admin")]

    tech_token = _api_token(client, tech)
    refused = client.get(
        "/api/v1/audit/checkpoints", headers={"Authorization": f"Bearer {tech_token}"}
    )
    # The refusal is a problem answer that carries no checkpoint (its `instance` names
    # the path, so the word alone proves nothing).
    assert refused.status_code == 403 and refused.json()["reason"] == "not_allowed"
    assert b"signature" not in refused.content and b"chain_hash" not in refused.content
    db.rollback()
    denied = db.execute(
        select(AuditEvent).where(
            AuditEvent.action == "audit.checkpoints_downloaded", AuditEvent.outcome == "denied"
        )
    ).scalar_one()
    assert denied.actor_name == "tekniker" and denied.reason == "not_admin"
    # The refusal made no checkpoint: still only the admin's.
    assert [c.seq for c in checkpoint_store.all_checkpoints(db)] == [c.seq for c in checkpoints]

    # The portal's audit page links the same file for the admin.
    web_login(client, admin)
    page = client.get("/portal/audit")
    assert 'href="/portal/audit/checkpoints.json"' in page.text
    again = client.get("/portal/audit/checkpoints.json")
    assert again.status_code == 200
    assert "attachment" in again.headers["content-disposition"]
    newer = verified(parse_file(again.content), state.keys.signing.public_key())
    assert len(newer) == len(checkpoints) + 1


def test_a_savepoint_forwards_nothing_until_the_commit_and_drops_only_its_own(state, db) -> None:
    """A service runs in a SAVEPOINT (portal.trail.refusals_audited): releasing one is
    no commit, and rolling one back drops only the events written inside it."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(30)
    port = receiver.getsockname()[1]
    factory = state.db_sessions
    forward.install(factory, forward.SyslogForwarder(f"127.0.0.1:{port}"), "SHA256:test")
    try:
        with factory() as session:
            record(session, "test.before", Outcome.INFO, actor=Actor.system())
            with session.begin_nested():
                record(session, "test.released", Outcome.INFO, actor=Actor.system())
            savepoint = session.begin_nested()
            record(session, "test.undone", Outcome.INFO, actor=Actor.system())
            savepoint.rollback()
            record(session, "test.after", Outcome.INFO, actor=Actor.system())
            receiver.setblocking(False)
            with pytest.raises(BlockingIOError):
                receiver.recv(65535)  # nothing sent before the commit
            receiver.setblocking(True)
            receiver.settimeout(30)
            session.commit()
        sent = [
            json.loads(receiver.recv(65535).decode().split(" - audit - ", 1)[1]) for _ in range(3)
        ]
    finally:
        receiver.close()
    assert [p["action"] for p in sent] == ["test.before", "test.released", "test.after"]
