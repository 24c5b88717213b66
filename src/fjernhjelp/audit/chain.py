"""How an audit event is hashed into the chain.

hash = SHA-256( prev_hash (64 hex chars, ASCII) || canonical JSON of the event )

The canonical JSON has sorted keys, no spaces, UTF-8, and includes the sequence
number, so an edited field, a deleted event and two swapped events all break the chain.
The first event's predecessor is GENESIS.

``vendor_org_id`` (migration 0012) is hashed only when it is set: the events written
before it existed keep their hashes, and an event that names a vendor cannot lose it
unnoticed.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

GENESIS = "0" * 64

HASHED_FIELDS = (
    "seq",
    "id",
    "occurred_at",
    "action",
    "outcome",
    "reason",
    "actor_user_id",
    "actor_name",
    "actor_org_id",
    "customer_org_id",
    "machine_id",
    "source_address",
    "factor",
    "details",
)
# Hashed when not None only (see above).
OPTIONAL_FIELDS = ("vendor_org_id",)


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value


def canonical_details(details: dict[str, Any] | None) -> str:
    return json.dumps(
        details or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def canonical_event(fields: dict[str, Any]) -> bytes:
    body = {name: _plain(fields.get(name)) for name in HASHED_FIELDS}
    for name in OPTIONAL_FIELDS:
        if fields.get(name) is not None:
            body[name] = _plain(fields[name])
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_event(fields)).hexdigest()


def fields_of(event: object) -> dict[str, Any]:
    return {name: getattr(event, name) for name in (*HASHED_FIELDS, *OPTIONAL_FIELDS)}
