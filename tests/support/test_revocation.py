"""What ends an Access session ends a Support session too: the agreement that allows it
revoked or expired, the technician's account suspended, the vendor or the customer
suspended. A waiting code dies (whoever enters it later is refused, and the log says
why), a joined client and a running tunnel are cut, each with ``session.ended`` and the
reason, as Access's cuts are; the vendor's Support sessions for other customers run on."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fjernhjelp.control import statements
from fjernhjelp.portal import agreements, members, organisations, sweep, terms
from fjernhjelp.portal.models import AgreementKind, OrgKind
from fjernhjelp.portal.revocations import Revocation
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.remote import support, support_tunnel
from fjernhjelp.remote.models import SessionStatus
from fjernhjelp.remote.sessions import TICKET_LIFETIME
from fjernhjelp.server.runtime import AccessRuntime
from tests.asyncrun import run_async
from tests.helpers import make_org, make_user
from tests.portal.world import World
from tests.support.kit import config, details, events, make_code, row

ADDRESS = "203.0.113.5"


def _join_and_log_in(world: World, customer: uuid.UUID | None = None) -> uuid.UUID:
    created = make_code(world, customer=customer)
    joined = support.join(world.db, config(world.state), created.code, ADDRESS, world.state.now())
    key = Ed25519PrivateKey.generate()
    nonce = os.urandom(statements.NONCE_BYTES)
    public = key.public_key().public_bytes_raw()
    support_tunnel.client_login(
        world.db,
        session_id=joined.session_id,
        token=joined.client_token,
        public_key=public,
        nonce=nonce,
        signature=key.sign(
            statements.support_client_proof_statement(nonce, joined.session_id, public)
        ),
        now=world.state.now(),
        source_address=ADDRESS,
        client_version="test",
    )
    world.db.commit()
    return joined.session_id


def _running(world: World, customer: uuid.UUID | None = None) -> uuid.UUID:
    """A Support session whose tunnel the technician asked for and both ends reached."""
    session_id = _join_and_log_in(world, customer)
    support_tunnel.request_tunnel(
        world.db,
        world.caller(world.tech),
        session_id,
        technician_key=X25519PrivateKey.generate().public_key().public_bytes_raw(),
        signing_key=world.state.keys.signing,
        node_id="node-test",
        client_online=True,
        ticket_lifetime=TICKET_LIFETIME,
    )
    remote_sessions.mark_active(world.db, session_id, world.state.now())
    world.db.commit()
    return session_id


def _second_customer(world: World) -> uuid.UUID:
    """Another customer of the same vendor, with its own Support agreement."""
    other = make_org(world.db, "Tannlegen i Fjordbyen", kind=OrgKind.DENTIST)
    admin = make_user(world.db, world.state, other, "tann-admin", admin=True, technician=False)
    world.db.commit()
    terms.accept(world.db, world.caller(admin), "receiving")
    agreements.record(
        world.db,
        world.caller(admin),
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
    return other.id


def _runtime(world: World) -> tuple[AccessRuntime, list[dict[str, object]]]:
    runtime = AccessRuntime(world.state)
    cuts: list[dict[str, object]] = []

    async def broadcast(message: dict[str, object]) -> None:
        cuts.append(message)

    runtime.cluster.broadcast = broadcast  # type: ignore[method-assign]
    return runtime, cuts


def _apply_new_events(world: World, runtime: AccessRuntime, seen: int) -> list[uuid.UUID]:
    cut: list[uuid.UUID] = []
    for event in world.events[seen:]:
        cut += run_async(runtime.apply(event))
    return cut


def _revoke_agreement(world: World) -> None:
    assert world.agreement is not None
    agreements.revoke(world.db, world.caller(world.gp_admin), world.agreement.id)
    world.db.commit()


def _expire_agreement(world: World) -> None:
    assert world.agreement is not None
    later = world.agreement.valid_until + timedelta(seconds=1)  # type: ignore[operator]
    sweep.expire_agreements(world.db, later)
    world.db.commit()


def _suspend_technician(world: World) -> None:
    members.suspend(world.db, world.caller(world.operator), world.tech.user.id)
    world.db.commit()


def _suspend_vendor(world: World) -> None:
    organisations.suspend(world.db, world.caller(world.operator), world.vendor.id)
    world.db.commit()


def _suspend_customer(world: World) -> None:
    organisations.suspend(world.db, world.caller(world.operator), world.gp.id)
    world.db.commit()


ENDINGS: dict[str, tuple[Callable[[World], None], str, bool]] = {
    # what ends, the revocation kind, whether the other customer's session goes on
    "agreement revoked": (_revoke_agreement, "agreement_revoked", True),
    "agreement expired": (_expire_agreement, "agreement_expired", True),
    "technician suspended": (_suspend_technician, "user_suspended", False),
    "vendor suspended": (_suspend_vendor, "organisation_suspended", False),
    "customer suspended": (_suspend_customer, "organisation_suspended", True),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_what_ends_access_ends_the_vendors_support_sessions(world: World, ending: str) -> None:
    act, kind, other_goes_on = ENDINGS[ending]
    other_customer = _second_customer(world)
    waiting = make_code(world)
    joined = _join_and_log_in(world)
    running = _running(world)
    elsewhere = _running(world, other_customer)
    runtime, cuts = _runtime(world)
    seen = len(world.events)

    act(world)
    cut = _apply_new_events(world, runtime, seen)

    mine = {waiting.session.id, joined, running}
    assert mine <= set(cut)
    assert (elsewhere not in cut) is other_goes_on
    # The joined client and the running tunnel are told where they are (the relay and
    # the client's control link, keyed by the session).
    told = {uuid.UUID(str(c["session_id"])) for c in cuts if c["reason"] == kind}
    assert {joined, running} <= told
    for session_id in (waiting.session.id, joined):
        ended = row(world.db, session_id)
        assert ended.status == SessionStatus.ENDED and ended.end_reason == f"cut:{kind}"
        # The console shows it cancelled, not running or waiting.
        assert support.state_of(ended, world.state.now()) == support.State.CANCELLED
    ended_events = {details(e)["session"]: e for e in events(world.db, "session.ended")}
    for session_id in (waiting.session.id, joined):
        event = ended_events[str(session_id)]
        assert event.reason == f"cut:{kind}" and details(event)["support"] is True
        assert event.customer_org_id == world.gp.id
    if other_goes_on:
        assert row(world.db, elsewhere).status == SessionStatus.ACTIVE


def test_a_code_whose_agreement_ended_is_refused_and_the_log_says_why(world: World) -> None:
    waiting = make_code(world)
    runtime, _ = _runtime(world)
    seen = len(world.events)
    _revoke_agreement(world)
    _apply_new_events(world, runtime, seen)
    world.db.expire_all()  # the test's session reads what the runtime wrote

    with pytest.raises(support.CodeInvalid) as refused:
        support.join(world.db, config(world.state), waiting.code, ADDRESS, world.state.now())
    world.db.commit()
    assert refused.value.answer_reason == "support.code_invalid"
    [attempt] = events(world.db, "support.code_attempt", outcome="failure")
    assert attempt.reason == "cancelled" and attempt.source_address == ADDRESS
    ended = row(world.db, waiting.session.id)
    assert ended.code_used_at is None and ended.end_user_token_hash is None


def test_an_access_only_agreement_ending_leaves_support_under_another_running(
    world: World,
) -> None:
    """Support rests on the agreement that covers it: ending another one (Access only)
    between the same two organisations cuts no Support session."""
    assert world.agreement is not None
    access_only = world.record_agreement(reference="Avtale 2026-18", covers="access")
    session_id = _running(world)
    assert row(world.db, session_id).agreement_id == world.agreement.id
    runtime, cuts = _runtime(world)
    seen = len(world.events)
    agreements.revoke(world.db, world.caller(world.gp_admin), access_only.id)
    world.db.commit()
    assert session_id not in _apply_new_events(world, runtime, seen)
    assert cuts == []
    assert row(world.db, session_id).status == SessionStatus.ACTIVE


def test_a_revocation_for_another_vendor_leaves_the_session_alone(world: World) -> None:
    session_id = _join_and_log_in(world)
    runtime, cuts = _runtime(world)
    rival = make_org(world.db, "Konkurrent AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    world.db.commit()
    seen = len(world.events)
    organisations.suspend(world.db, world.caller(world.operator), rival.id)
    world.db.commit()
    assert _apply_new_events(world, runtime, seen) == []
    assert cuts == []
    assert row(world.db, session_id).status == SessionStatus.JOINED
    assert isinstance(world.events[-1], Revocation)
