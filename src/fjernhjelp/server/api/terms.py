"""Terms of use: the operator publishes; an organisation's admin accepts, per role."""

from __future__ import annotations

from fastapi import APIRouter

from fjernhjelp.portal import terms
from fjernhjelp.portal.models import Audience
from fjernhjelp.server.api.refusals import REFUSALS
from fjernhjelp.server.api.schemas import AcceptanceOut, TermsIn, TermsOut, TermsStatusOut
from fjernhjelp.server.deps import DB
from fjernhjelp.server.portal_caller import ApiCaller

router = APIRouter(prefix="/terms", tags=["terms"], responses=REFUSALS)


@router.get("", response_model=list[TermsStatusOut])
def my_terms(db: DB, caller: ApiCaller) -> list[TermsStatusOut]:
    """The current terms for each role your organisation has, and whether it accepted them."""
    caller.require_admin()
    out = []
    for audience in terms.audiences_of(caller.org):
        st = terms.status(db, caller.user.organisation_id, audience)
        out.append(
            TermsStatusOut(
                audience=audience.value,
                current=TermsOut.of(st.current) if st.current else None,
                accepted=AcceptanceOut.of(st.accepted) if st.accepted else None,
            )
        )
    return out


@router.get("/versions", response_model=list[TermsOut])
def versions(db: DB, caller: ApiCaller) -> list[TermsOut]:
    caller.require_admin()
    return [TermsOut.of(t) for t in terms.all_versions(db)]


@router.post("", response_model=TermsOut, status_code=201)
def publish(body: TermsIn, db: DB, caller: ApiCaller) -> TermsOut:
    """Operator only. Every organisation must accept the new version before further use."""
    version = terms.publish(
        db,
        caller,
        audience=body.audience,
        title=body.title,
        body_nb=body.body_nb,
        body_en=body.body_en,
    )
    db.commit()
    return TermsOut.of(version)


@router.post("/{audience}/accept", response_model=AcceptanceOut)
def accept(audience: Audience, db: DB, caller: ApiCaller) -> AcceptanceOut:
    acceptance = terms.accept(db, caller, audience.value)
    db.commit()
    return AcceptanceOut.of(acceptance)
