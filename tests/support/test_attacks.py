"""Attacks on Support codes, each asserting the refusal, its audit event, and that nothing
else changed: a used code, an expired one, a guessed one, another customer's, a burst of
wrong codes from one address, Support where the agreement covers only Access, and (the
allowed side) Support to a municipality that has Support only."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.auth.models import Throttle
from fjernhjelp.caller import Caller
from fjernhjelp.portal import agreements, grants, terms
from fjernhjelp.portal.access import DenyReason
from fjernhjelp.portal.models import AgreementKind, OrgKind
from fjernhjelp.refusals import NotFound
from fjernhjelp.remote import support, support_codes
from fjernhjelp.remote.models import RemoteSession, SessionStatus
from fjernhjelp.remote.support import CodeInvalid, CodeThrottled, SupportRefused
from tests.helpers import make_org, make_user
from tests.portal.world import World
from tests.support.kit import config, details, events, make_code, row

GUESSER = "198.51.100.7"


def _join(world: World, code: str, address: str = "203.0.113.5") -> support.Joined:
    try:
        joined = support.join(world.db, config(world.state), code, address, world.state.now())
    except (CodeInvalid, CodeThrottled) as exc:
        assert exc.recorded  # its event and counters are what the request keeps
        world.db.commit()
        raise
    world.db.commit()
    return joined


def _support_rows(world: World) -> int:
    world.db.rollback()
    return world.db.execute(select(func.count()).select_from(RemoteSession)).scalar_one()


def test_a_used_code_is_refused_and_the_session_stays_the_first_joiners(world: World) -> None:
    created = make_code(world)
    first = _join(world, created.code, "203.0.113.5")
    assert (first.technician, first.vendor, first.customer) == (
        "Tekniker",
        "Journalleverandør AS",
        "Legekontoret Fjordbyen",
    )
    with pytest.raises(CodeInvalid) as refused:
        _join(world, created.code, GUESSER)
    assert refused.value.answer_reason == "support.code_invalid"
    assert refused.value.reason == "used"
    failure = events(world.db, "support.code_attempt", outcome="failure")[-1]
    assert failure.reason == "used" and failure.source_address == GUESSER
    # A real code: the customer reads who tried it again.
    assert failure.customer_org_id == world.gp.id
    assert details(failure) == {"session": str(created.session.id)}
    after = row(world.db, created.session.id)
    assert after.status == SessionStatus.JOINED and after.joined_from == "203.0.113.5"


def test_an_expired_code_is_refused_even_before_the_sweep(world: World) -> None:
    created = make_code(world)
    world.state.clock.advance(minutes=20, seconds=1)  # type: ignore[attr-defined]
    with pytest.raises(CodeInvalid) as refused:
        _join(world, created.code)
    assert refused.value.reason == "expired"
    assert refused.value.answer_reason == "support.code_invalid"
    [failure] = events(world.db, "support.code_attempt", outcome="failure")
    assert failure.reason == "expired" and failure.customer_org_id == world.gp.id
    after = row(world.db, created.session.id)
    assert after.status == SessionStatus.WAITING and after.code_used_at is None
    assert support.state_of(after, world.state.now()) == "expired"


def test_the_sweep_ends_an_expired_code_once_with_an_event(world: World) -> None:
    created = make_code(world)
    waiting = make_code(world)
    world.db.rollback()
    world.db.get(RemoteSession, waiting.session.id).code_expires_at = world.state.now() + (  # type: ignore[union-attr]
        timedelta(hours=1)
    )
    world.db.commit()
    world.state.clock.advance(minutes=21)  # type: ignore[attr-defined]
    from fjernhjelp.portal import sweep

    report = sweep.run_once(world.state.db_sessions, world.state.now, timedelta(days=90))
    assert report.support_codes_expired == 1
    again = sweep.run_once(world.state.db_sessions, world.state.now, timedelta(days=90))
    assert again.support_codes_expired == 0
    [expired] = events(world.db, "support.code_expired")
    assert expired.customer_org_id == world.gp.id
    assert details(expired)["session"] == str(created.session.id)
    ended = row(world.db, created.session.id)
    assert (ended.status, ended.end_reason) == (SessionStatus.ENDED, "code_expired")
    assert row(world.db, waiting.session.id).status == SessionStatus.WAITING
    with pytest.raises(CodeInvalid) as refused:
        _join(world, created.code)
    assert refused.value.reason == "expired"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("123 456 789", "unknown"),
        ("12345", "malformed"),
        ("12345678x", "malformed"),
        ("١٢٣٤٥٦٧٨٩", "malformed"),  # other scripts' digits are not a code's
    ],
)
def test_a_guessed_code_answers_like_any_wrong_code(world: World, typed: str, reason: str) -> None:
    created = make_code(world)
    before = _support_rows(world)
    with pytest.raises(CodeInvalid) as refused:
        _join(world, typed, GUESSER)
    assert refused.value.reason == reason
    assert refused.value.answer_reason == "support.code_invalid"
    assert refused.value.sentence_key == "support.code_invalid"
    [failure] = events(world.db, "support.code_attempt", outcome="failure")
    assert failure.reason == reason and failure.source_address == GUESSER
    assert failure.customer_org_id is None and failure.details == "{}"  # names nobody
    assert _support_rows(world) == before
    assert row(world.db, created.session.id).status == SessionStatus.WAITING


def test_spaces_and_dashes_are_ignored(world: World) -> None:
    created = make_code(world)
    typed = f" {created.code[:3]}-{created.code[3:6]}\u00a0{created.code[6:]} "
    assert _join(world, typed).customer == "Legekontoret Fjordbyen"


def test_a_code_is_bound_to_its_customer_and_technician(world: World) -> None:
    """A second customer of the same vendor: each code answers its own customer, and
    another vendor's technician can neither see nor cancel the session."""
    other = make_org(world.db, "Tannlegen i Fjordbyen", kind=OrgKind.DENTIST)
    other_admin = make_user(world.db, world.state, other, "tann-admin", admin=True,
                            technician=False)  # fmt: skip
    world.db.commit()
    terms.accept(world.db, world.caller(other_admin), "receiving")
    agreements.record(
        world.db,
        world.caller(other_admin),
        agreements.AgreementSpec(
            vendor_org_id=world.vendor.id,
            kind=AgreementKind.REMOTE_SUPPORT.value,
            reference="Tann 1",
            valid_from=world.state.now() - timedelta(days=1),
            valid_until=None,
            covers="support",
        ),
    )
    world.db.commit()
    for_gp, for_other = make_code(world), make_code(world, customer=other.id)
    assert _join(world, for_other.code).customer == "Tannlegen i Fjordbyen"
    assert _join(world, for_gp.code).customer == "Legekontoret Fjordbyen"

    rival = make_org(world.db, "Konkurrent AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    rival_tech = make_user(world.db, world.state, rival, "rival")
    colleague = make_user(world.db, world.state, world.vendor, "kollega")
    world.db.commit()
    waiting = make_code(world)
    for intruder in (rival_tech, colleague):
        caller = Caller.of_person(intruder.user, world.state.now(), "192.0.2.99")
        world.db.rollback()
        with pytest.raises(NotFound):
            support.own(world.db, caller, waiting.session.id)
        assert support.list_own(world.db, caller) == []
        with pytest.raises(NotFound):
            support.cancel(world.db, caller, waiting.session.id)
        world.db.commit()
        refused = events(world.db, "support.cancelled", outcome="denied")[-1]
        assert refused.actor_name == intruder.username and refused.reason == "not_found"
        # On the intruder's own organisation: the event names nobody else's.
        assert refused.customer_org_id == intruder.user.organisation_id
    assert row(world.db, waiting.session.id).status == SessionStatus.WAITING


def test_a_burst_of_wrong_codes_from_one_address_is_throttled_and_audited(world: World) -> None:
    created = make_code(world)
    limit = world.state.settings.support_code_address_failures
    for n in range(limit):
        with pytest.raises(CodeInvalid):
            _join(world, f"{n:09d}", GUESSER)
    [lockout] = events(world.db, "support.code_lockout")
    assert lockout.reason == "address_failures" and lockout.source_address == GUESSER
    # Now even the right code is refused from that address, with a time to wait ...
    with pytest.raises(CodeThrottled) as throttled:
        _join(world, created.code, GUESSER)
    assert throttled.value.status == 429 and throttled.value.retry_after
    assert throttled.value.answer_reason == "support.code_throttled"
    denied = events(world.db, "support.code_attempt", outcome="denied")
    assert [(e.reason, e.source_address) for e in denied] == [("throttled", GUESSER)]
    assert details(denied[0]) == {"subject": "address"}
    assert row(world.db, created.session.id).status == SessionStatus.WAITING
    # ... while another address is not held up.
    assert _join(world, created.code, "203.0.113.80").technician == "Tekniker"


def test_ipv6_guessers_are_counted_by_their_prefix(world: World) -> None:
    limit = world.state.settings.support_code_address_failures
    for n in range(limit):
        with pytest.raises(CodeInvalid):
            _join(world, f"{n:09d}", f"2001:db8:1:2::{n + 1:x}")
    created = make_code(world)
    with pytest.raises(CodeThrottled):
        _join(world, created.code, "2001:db8:1:2:ffff::1")
    world.db.rollback()
    keys = world.db.execute(select(Throttle.key)).scalars().all()
    assert "support_code_address:2001:db8:1:2::/64" in keys


def test_wrong_codes_from_everywhere_are_throttled_overall(db, state, world: World) -> None:
    state.settings.support_code_overall_failures_per_hour = 5
    created = make_code(world)
    for n in range(5):
        with pytest.raises(CodeInvalid):
            _join(world, f"{n:09d}", f"198.51.100.{n + 10}")
    with pytest.raises(CodeThrottled):
        _join(world, created.code, "203.0.113.200")
    [lockout] = events(world.db, "support.code_lockout")
    assert lockout.reason == "overall_failures"
    assert details(events(world.db, "support.code_attempt", outcome="denied")[0]) == {
        "subject": "overall"
    }
    # The hour turns and the lockout runs out: genuine users get in again.
    world.state.clock.advance(hours=1, minutes=1)  # type: ignore[attr-defined]
    fresh = make_code(world)
    assert _join(world, fresh.code, "203.0.113.200").customer == "Legekontoret Fjordbyen"


def test_support_where_the_agreement_covers_only_access_is_refused(world: World) -> None:
    grants.revoke(world.db, world.caller(world.gp_admin), world.grant.id)  # type: ignore[union-attr]
    agreements.revoke(world.db, world.caller(world.gp_admin), world.agreement.id)  # type: ignore[union-attr]
    world.db.commit()
    world.record_agreement(reference="Bare Access", covers="access")
    before = _support_rows(world)
    with pytest.raises(SupportRefused) as refused:
        make_code(world)
    world.db.commit()
    assert refused.value.reason == DenyReason.NO_SUPPORT_AGREEMENT.value
    assert refused.value.status == 403 and refused.value.recorded
    [event] = events(world.db, "support.requested", outcome="denied")
    assert event.reason == "no_support_agreement" and event.actor_name == "tekniker"
    assert details(event) == {"customer": str(world.gp.id)}
    assert events(world.db, "support.code_created") == []
    assert _support_rows(world) == before


def test_support_to_a_municipality_with_support_only_is_allowed(world: World) -> None:
    municipality = make_org(world.db, "Fjordbyen kommune", kind=OrgKind.MUNICIPALITY)
    admin = make_user(world.db, world.state, municipality, "kommune-admin", admin=True,
                      technician=False)  # fmt: skip
    world.db.commit()
    assert municipality.access_enabled is False
    terms.accept(world.db, world.caller(admin), "receiving")
    agreements.record(
        world.db,
        world.caller(admin),
        agreements.AgreementSpec(
            vendor_org_id=world.vendor.id,
            kind=AgreementKind.REMOTE_SUPPORT.value,
            reference="Kommuneavtale 1",
            valid_from=world.state.now() - timedelta(days=1),
            valid_until=None,
            covers="support",
        ),
    )
    world.db.commit()
    created = make_code(world, customer=municipality.id)
    [made] = events(world.db, "support.code_created")
    assert made.customer_org_id == municipality.id and made.actor_org_id == world.vendor.id
    assert _join(world, created.code).customer == "Fjordbyen kommune"


def test_a_code_made_before_the_agreement_ended_stops_working(world: World) -> None:
    created = make_code(world)
    agreements.revoke(world.db, world.caller(world.gp_admin), world.agreement.id)  # type: ignore[union-attr]
    world.db.commit()
    with pytest.raises(CodeInvalid) as refused:
        _join(world, created.code)
    assert refused.value.reason == "no_longer_allowed"
    assert row(world.db, created.session.id).code_used_at is None


def test_the_code_is_never_in_the_audit_log_nor_in_a_log_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = make_code(world)
    typed = support_codes.grouped(created.code)
    _join(world, typed)
    with pytest.raises(CodeInvalid):
        _join(world, created.code)
    support.cancel(world.db, world.caller(world.tech), make_code(world).session.id)
    world.db.commit()
    world.db.rollback()
    everything = world.db.execute(select(AuditEvent)).scalars().all()
    for event in everything:
        for value in (event.details, event.reason or "", event.actor_name or ""):
            assert created.code not in value and typed not in value
    assert created.code not in caplog.text and typed not in caplog.text
    # Nor in the row: only its MAC, which is not a plain hash of the code.
    stored = row(world.db, created.session.id)
    assert stored.code_digest is not None and created.code.encode() not in stored.code_digest
    import hashlib

    assert stored.code_digest != hashlib.sha256(created.code.encode()).digest()


def test_cancel_ends_a_waiting_session_once(world: World) -> None:
    created = make_code(world)
    support.cancel(world.db, world.caller(world.tech), created.session.id)
    world.db.commit()
    [event] = events(world.db, "support.cancelled", outcome="success")
    assert event.customer_org_id == world.gp.id and details(event)["was"] == "waiting"
    with pytest.raises(support.NotCancellable):
        support.cancel(world.db, world.caller(world.tech), created.session.id)
    world.db.commit()
    assert events(world.db, "support.cancelled", outcome="denied")[0].reason == (
        "support.not_cancellable"
    )
    with pytest.raises(CodeInvalid) as refused:
        _join(world, created.code)
    assert refused.value.reason == "cancelled"


def test_a_stranger_id_is_refused_like_no_agreement(world: World) -> None:
    with pytest.raises(SupportRefused) as refused:
        make_code(world, customer=uuid.uuid4())
    world.db.commit()
    assert refused.value.reason == "no_support_agreement"
    [event] = events(world.db, "support.requested", outcome="denied")
    assert event.customer_org_id is None


def test_the_link_with_the_code_is_redacted_in_the_access_log() -> None:
    from fjernhjelp.logs import RedactEnrolmentLinks

    line = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("203.0.113.5:5000", "GET", "/s/482193775", "1.1", 200), None,
    )  # fmt: skip
    assert RedactEnrolmentLinks().filter(line)
    assert "482193775" not in line.getMessage() and "/s/[redacted]" in line.getMessage()
    static = logging.LogRecord("x", logging.INFO, __file__, 1, "GET /static/support.css", (), None)
    RedactEnrolmentLinks().filter(static)
    assert static.getMessage() == "GET /static/support.css"
