"""Terms of use: the operator publishes versions; each organisation accepts the current
one, separately for receiving and for giving help, before using the service that way."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fjernhjelp.caller import Caller
from fjernhjelp.portal.errors import NotAllowed, PortalError
from fjernhjelp.portal.models import Audience, Organisation, TermsAcceptance, TermsVersion
from fjernhjelp.portal.trail import audits_refusals, changed

MAX_TITLE = 200
MAX_BODY = 100_000


@dataclass(frozen=True, slots=True)
class TermsStatus:
    audience: Audience
    current: TermsVersion | None
    accepted: TermsAcceptance | None  # of the current version
    previous: TermsAcceptance | None  # the newest acceptance of an older version

    @property
    def ok(self) -> bool:
        return self.accepted is not None


def describe(terms: TermsVersion) -> dict[str, Any]:
    return {
        "id": str(terms.id),
        "audience": terms.audience,
        "version": terms.version,
        "title": terms.title,
        "published_at": terms.published_at.isoformat(),
    }


def describe_acceptance(acceptance: TermsAcceptance) -> dict[str, Any]:
    return {
        "organisation": str(acceptance.organisation_id),
        "audience": acceptance.audience,
        "version": acceptance.terms.version,
        "accepted_by": acceptance.accepted_by_name,
        "accepted_at": acceptance.accepted_at.isoformat(),
    }


def parse_audience(value: str) -> Audience:
    try:
        return Audience(value)
    except ValueError:
        raise PortalError("terms.bad_audience") from None


def current(db: Session, audience: Audience) -> TermsVersion | None:
    return db.execute(
        select(TermsVersion)
        .where(TermsVersion.audience == audience)
        .order_by(TermsVersion.version.desc())
        .limit(1)
    ).scalar_one_or_none()


def all_versions(db: Session) -> list[TermsVersion]:
    return list(
        db.execute(
            select(TermsVersion).order_by(TermsVersion.audience, TermsVersion.version.desc())
        ).scalars()
    )


def _acceptances(db: Session, org_id: uuid.UUID, audience: Audience) -> list[TermsAcceptance]:
    return list(
        db.execute(
            select(TermsAcceptance)
            .join(TermsVersion, TermsAcceptance.terms_id == TermsVersion.id)
            .where(
                TermsAcceptance.organisation_id == org_id,
                TermsAcceptance.audience == audience,
            )
            .order_by(TermsVersion.version.desc())
        ).scalars()
    )


def status(db: Session, org_id: uuid.UUID, audience: Audience) -> TermsStatus:
    cur = current(db, audience)
    accepted = _acceptances(db, org_id, audience)
    of_current = next((a for a in accepted if cur and a.terms_id == cur.id), None)
    older = next((a for a in accepted if not cur or a.terms_id != cur.id), None)
    return TermsStatus(audience, cur, of_current, older)


def accepted_current(db: Session, org_id: uuid.UUID, audience: Audience) -> bool:
    """True only if the newest published version is accepted; no terms means no."""
    cur = current(db, audience)
    if cur is None:
        return False
    found = db.execute(
        select(func.count())
        .select_from(TermsAcceptance)
        .where(TermsAcceptance.organisation_id == org_id, TermsAcceptance.terms_id == cur.id)
    ).scalar_one()
    return found > 0


def require_accepted(db: Session, org: Organisation, audience: Audience) -> None:
    if not accepted_current(db, org.id, audience):
        raise PortalError(f"terms.accept_{audience.value}_first")


def audiences_of(org: Organisation) -> list[Audience]:
    roles = []
    if org.receives_help:
        roles.append(Audience.RECEIVING)
    if org.gives_help:
        roles.append(Audience.GIVING)
    return roles


@audits_refusals("terms.published")
def publish(
    db: Session, caller: Caller, *, audience: str, title: str, body_nb: str, body_en: str = ""
) -> TermsVersion:
    caller.require_operator()
    which = parse_audience(audience)
    title, body_nb, body_en = title.strip(), body_nb.strip(), body_en.strip()
    if not title or len(title) > MAX_TITLE:
        raise PortalError("terms.bad_title")
    if not body_nb or len(body_nb) > MAX_BODY or len(body_en) > MAX_BODY:
        raise PortalError("terms.bad_body")
    previous = current(db, which)
    terms = TermsVersion(
        audience=which,
        version=(previous.version if previous else 0) + 1,
        title=title,
        body_nb=body_nb,
        body_en=body_en,
        published_at=caller.now,
        published_by_id=caller.user.id,
    )
    db.add(terms)
    db.flush()
    changed(
        db,
        caller,
        "terms.published",
        org_id=None,
        before=describe(previous) if previous else None,
        after=describe(terms),
    )
    return terms


@audits_refusals("terms.accepted")
def accept(db: Session, caller: Caller, audience: str) -> TermsAcceptance:
    """Accept the current version for ``audience``; accepting twice changes nothing."""
    caller.require_admin()
    which = parse_audience(audience)
    org = caller.org
    if which not in audiences_of(org):
        raise NotAllowed(f"{which.value}_organisation")
    st = status(db, org.id, which)
    if st.current is None:
        raise PortalError("terms.none_published")
    if st.accepted is not None:
        return st.accepted
    acceptance = TermsAcceptance(
        organisation_id=org.id,
        terms=st.current,
        audience=which,
        accepted_at=caller.now,
        accepted_by_id=caller.user.id,
        accepted_by_name=f"{caller.user.display_name} ({caller.user.username})",
    )
    db.add(acceptance)
    db.flush()
    changed(
        db,
        caller,
        "terms.accepted",
        org_id=org.id,
        before=describe_acceptance(st.previous) if st.previous else None,
        after=describe_acceptance(acceptance),
    )
    return acceptance
