"""First start: enrol with the installer token and a proof of the new identity key.

The server answers with a machine id and its own signature over (id, our key), checked
with the key pinned from the installer package: a machine id from anyone else is refused.
"""

from __future__ import annotations

import uuid

import httpx
from cryptography.exceptions import InvalidSignature

from fjernhjelp.agent.config import AgentConfig
from fjernhjelp.agent.identity import AgentIdentity
from fjernhjelp.agent.tls import client_context
from fjernhjelp.control import statements
from fjernhjelp.control.messages import MachineInfo, b64, unb64


class EnrolmentFailed(Exception):
    """``permanent`` failures (a refused token) will not succeed by trying again."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


async def enrol(config: AgentConfig, identity: AgentIdentity, info: MachineInfo) -> uuid.UUID:
    if not config.enrolment_token:
        raise EnrolmentFailed("no_enrolment_token", permanent=True)
    token = config.enrolment_token
    public = identity.public_bytes
    body = {
        "token": token,
        "public_key": b64(public),
        "signature": b64(identity.sign(statements.enrol_statement(token, public))),
        "info": info.model_dump(mode="json"),
    }
    try:
        async with httpx.AsyncClient(
            base_url=config.server_url, timeout=30, verify=client_context(config)
        ) as client:
            response = await client.post("/api/v1/agents/enrol", json=body)
    except httpx.HTTPError as exc:
        raise EnrolmentFailed(f"unreachable: {exc}", permanent=False) from exc
    if response.status_code == 403:
        raise EnrolmentFailed(response.json().get("reason", "refused"), permanent=True)
    if response.status_code != 201:
        raise EnrolmentFailed(f"http_{response.status_code}", permanent=response.status_code < 500)
    answer = response.json()
    try:
        machine_id = uuid.UUID(answer["machine_id"])
        config.server_key.verify(
            unb64(answer["server_signature"], 64),
            statements.enrolled_statement(machine_id, public),
        )
    except (KeyError, ValueError, InvalidSignature) as exc:
        raise EnrolmentFailed("server_not_trusted", permanent=True) from exc
    return machine_id
