"""Enrolling a machine: an installer token plus proof of the agent's new identity key.

A used-up, expired or revoked token, one made under a grant that has ended or no
longer lets the vendor make packages, a key that is already enrolled, or a signature that
does not verify is refused, audited, and changes no stored machine.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth.tokens import token_hash
from fjernhjelp.control import statements
from fjernhjelp.control.messages import MachineInfo
from fjernhjelp.db.dml import rows_matched
from fjernhjelp.machines.models import InstallerPackage, Machine
from fjernhjelp.machines.packages import maker_refusal
from fjernhjelp.refusals import EnrolmentRefused


def _refuse(
    db: Session,
    reason: str,
    *,
    source_address: str | None,
    package: InstallerPackage | None,
    details: dict[str, object],
) -> EnrolmentRefused:
    hostname = details.get("hostname")
    record(
        db,
        "machine.enrolment",
        Outcome.DENIED,
        actor=Actor.named(hostname and f"agent@{hostname}" if isinstance(hostname, str) else None),
        reason=reason,
        customer_org_id=package.organisation_id if package else None,
        source_address=source_address,
        details=details,
    )
    refusal = EnrolmentRefused(reason)
    # Every refusal comes before the machine is added and before the use is counted (a
    # use that was not counted changed no row), so the event is all the request keeps.
    refusal.recorded = True
    return refusal


def enrol(
    db: Session,
    *,
    token: str,
    public_key: bytes,
    signature: bytes,
    info: MachineInfo,
    now: datetime,
    source_address: str | None = None,
) -> Machine:
    """A new Machine in the package's group, or a refusal with its audit event (marked
    recorded). No Caller: the agent has no identity here until this gives it one, so the
    time and the address come as they are."""
    details: dict[str, object] = {"hostname": info.hostname, "os": info.os}
    package = db.execute(
        select(InstallerPackage).where(InstallerPackage.token_hash == token_hash(token))
    ).scalar_one_or_none()
    if package is None:
        raise _refuse(
            db, "unknown_token", source_address=source_address, package=None, details=details
        )
    details["package"] = str(package.id)
    unusable = package.usable_at(now)
    if unusable is None:
        # Checked again at every use, not at making: a revoked grant, or a right to make
        # packages taken back, stops every package made under it at once.
        unusable = maker_refusal(db, package, now)
        if unusable:
            details |= {"grant": str(package.grant_id) if package.grant_id else None}
    if unusable:
        raise _refuse(db, unusable, source_address=source_address, package=package, details=details)
    try:
        if len(public_key) != 32:
            raise ValueError
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, statements.enrol_statement(token, public_key)
        )
    except (ValueError, InvalidSignature):
        raise _refuse(
            db, "bad_signature", source_address=source_address, package=package, details=details
        ) from None
    existing = db.execute(
        select(Machine.id).where(Machine.identity_public_key == public_key)
    ).scalar_one_or_none()
    if existing is not None:
        raise _refuse(
            db,
            "identity_reused",
            source_address=source_address,
            package=package,
            details=details | {"existing_machine": str(existing)},
        )
    # Count the use with a guarded update, so two machines racing for the last use of a
    # token cannot both get it.
    taken = rows_matched(
        db,
        update(InstallerPackage)
        .where(
            InstallerPackage.id == package.id,
            InstallerPackage.uses < InstallerPackage.max_uses,
            InstallerPackage.revoked_at.is_(None),
        )
        .values(uses=InstallerPackage.uses + 1)
        .execution_options(synchronize_session=False),
    )
    if taken != 1:
        raise _refuse(
            db, "package_used_up", source_address=source_address, package=package, details=details
        )
    machine = Machine(
        organisation_id=package.organisation_id,
        group_id=package.group_id,
        package_id=package.id,
        identity_public_key=public_key,
        hostname=info.hostname,
        os=info.os,
        agent_version=info.agent_version,
        users=",".join(info.users),
        has_display=info.display,
        enrolled_at=now,
    )
    db.add(machine)
    db.flush()
    record(
        db,
        "machine.enrolled",
        Outcome.SUCCESS,
        actor=Actor.named(f"agent@{info.hostname}"),
        customer_org_id=package.organisation_id,
        machine_id=str(machine.id),
        source_address=source_address,
        details=details
        | {
            "group": str(package.group_id),
            "grant": str(package.grant_id) if package.grant_id else None,
            "package_made_by": package.created_by.username,
        },
    )
    return machine


def enrolled_proof(
    signing_key: Ed25519PrivateKey, machine_id: uuid.UUID, public_key: bytes
) -> bytes:
    """The server's signature the agent checks with its pinned key before it trusts
    the machine id it was given."""
    return signing_key.sign(statements.enrolled_statement(machine_id, public_key))
