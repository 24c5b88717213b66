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
from json.encoder import encode_basestring
from typing import Any, cast

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
    """The event's bytes under its hash. The definition is ``_canonical_json``; this
    writes the same bytes for the types events carry (str, None, int, UUID, datetime)
    without building a dict and sorting it per event (a batch of agents' logins hashes
    one event per login; tests/audit/test_canonical.py compares the two), and leaves any other
    value to the definition."""
    optional = fields.get("vendor_org_id")
    parts = []
    for name, prefix in _KEYS if optional is None else _KEYS_OPTIONAL:
        value = fields.get(name)
        kind = type(value)
        if kind is str:
            parts.append(prefix + encode_basestring(cast(str, value)))
        elif value is None:
            parts.append(prefix + "null")
        elif kind is uuid.UUID:
            parts.append(f'{prefix}"{value}"')
        elif kind is int:
            parts.append(prefix + int.__repr__(value))
        elif kind is datetime:
            parts.append(f'{prefix}"{value.isoformat(timespec="microseconds")}"')
        else:
            return _canonical_json(fields)
    return ("{" + ",".join(parts) + "}").encode()


def _canonical_json(fields: dict[str, Any]) -> bytes:
    """What an event's hash covers: its fields as JSON, sorted keys, no spaces, UTF-8."""
    body = {name: _plain(fields.get(name)) for name in HASHED_FIELDS}
    for name in OPTIONAL_FIELDS:
        if fields.get(name) is not None:
            body[name] = _plain(fields[name])
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# Each field's name as a key of the canonical JSON, in the order sort_keys writes them
# (json.dumps(ensure_ascii=False) escapes strings with encode_basestring too).
_KEYS = tuple((name, f'"{name}":') for name in sorted(HASHED_FIELDS))
_KEYS_OPTIONAL = tuple((name, f'"{name}":') for name in sorted((*HASHED_FIELDS, *OPTIONAL_FIELDS)))


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_event(fields)).hexdigest()


def fields_of(event: object) -> dict[str, Any]:
    return {name: getattr(event, name) for name in (*HASHED_FIELDS, *OPTIONAL_FIELDS)}
