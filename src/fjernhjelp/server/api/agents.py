"""Agent enrolment: an installer token and proof of a fresh identity key give a machine id.

No user session is involved: the enrolment token is the credential, and it is checked,
counted and audited by machines/enrolment.py.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import BaseModel, Field

from fjernhjelp.control.messages import MachineInfo, b64, unb64
from fjernhjelp.machines import enrolment
from fjernhjelp.refusals import EnrolmentRefused
from fjernhjelp.server.deps import DB, Client, State
from fjernhjelp.server.security import csrf_exempt

router = APIRouter(prefix="/agents", tags=["agents"])


class EnrolRequest(BaseModel):
    token: str = Field(max_length=128)
    public_key: str = Field(max_length=64, description="base64 raw Ed25519 public key")
    signature: str = Field(max_length=128, description="base64 signature of the enrol statement")
    info: MachineInfo


class Enrolled(BaseModel):
    machine_id: uuid.UUID
    server_signature: str = Field(description="the server's signature of the enrolled statement")


@router.post(
    "/enrol",
    response_model=Enrolled,
    status_code=201,
    responses={403: {"description": "refused, with the reason"}},
)
@csrf_exempt("an agent, not a browser: the enrolment token in the body is the credential")
def enrol(body: EnrolRequest, state: State, db: DB, client: Client) -> Enrolled:
    try:
        public_key = unb64(body.public_key, 32)
        signature = unb64(body.signature, 64)
    except ValueError:
        raise EnrolmentRefused("malformed") from None
    # A refusal comes marked recorded: get_db keeps its audit event.
    machine = enrolment.enrol(
        db,
        token=body.token,
        public_key=public_key,
        signature=signature,
        info=body.info,
        now=state.now(),
        source_address=client.source_address,
    )
    db.commit()
    proof = enrolment.enrolled_proof(state.keys.signing, machine.id, public_key)
    return Enrolled(machine_id=machine.id, server_signature=b64(proof))
