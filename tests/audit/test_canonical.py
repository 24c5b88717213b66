"""The bytes an event's hash covers are the definition's (sorted-key JSON), whichever way
they are written: a chain written before keeps verifying, and one written now verifies
with any reader of that definition."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from fjernhjelp.audit import chain

_text = st.one_of(st.none(), st.text(max_size=40))
_ids = st.one_of(st.none(), st.uuids())
_times = st.datetimes(
    min_value=datetime(2000, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(-timedelta(hours=5))]),
)
_events = st.fixed_dictionaries(
    {
        "seq": st.integers(1, 2**62),
        "id": st.uuids(),
        "occurred_at": _times,
        "action": st.text(max_size=30),
        "outcome": st.sampled_from(["success", "failure", "denied", "info"]),
        "reason": _text,
        "actor_user_id": _ids,
        "actor_name": _text,
        "actor_org_id": _ids,
        "customer_org_id": _ids,
        "vendor_org_id": _ids,
        "machine_id": _text,
        "source_address": _text,
        "factor": _text,
        "details": st.dictionaries(st.text(max_size=8), _text, max_size=3).map(
            chain.canonical_details
        ),
    }
)


@hypothesis_settings(max_examples=400, deadline=None)
@given(_events)
def test_an_events_bytes_are_the_definitions(fields: dict[str, Any]) -> None:
    assert chain.canonical_event(fields) == chain._canonical_json(fields)


class _Kind(StrEnum):
    INFO = "info"


def test_values_of_other_types_are_left_to_the_definition() -> None:
    """A str subclass (an enum member), a bool, a naive time or a missing field."""
    fields: dict[str, Any] = {
        "seq": 7,
        "id": uuid.uuid4(),
        "occurred_at": datetime(2026, 12, 6, 15, 0, 0, 1),
        "action": "agent.connect",
        "outcome": _Kind.INFO,
        "reason": True,
        "details": "{}",
        "vendor_org_id": str(uuid.uuid4()),
    }
    assert chain.canonical_event(fields) == chain._canonical_json(fields)
    assert b'"outcome":"info"' in chain.canonical_event(fields)
