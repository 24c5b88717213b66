"""Schemathesis against /api/v1/openapi.json, as each kind of caller, on each database.

Every operation of the document gets generated requests, valid and invalid, sent with a
real bearer token of the world's people (or none). Wanted: no 5xx, and every answer is
one the document declares: its status, its content type, a body matching its schema.

The number of examples per operation is kept small so the five roles on two databases
stay within about 90 s of the suite on two cores; FJERNHJELP_API_FUZZ_EXAMPLES raises it
for a longer run by hand.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fjernhjelp.server.app import create_app
from tests.helpers import Account
from tests.portal.world import build_world

EXAMPLES = int(os.environ.get("FJERNHJELP_API_FUZZ_EXAMPLES", "6"))
ROLES = ("anonymous", "technician", "customer_admin", "vendor_admin", "operator")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Logging out ends the token the rest of the run uses: it goes last.
LAST = {("POST", "/api/v1/auth/logout")}


@pytest.fixture
def fuzz_client(state) -> Iterator[asgi.ASGIClient]:  # type: ignore[no-untyped-def]
    app = create_app(state=state)
    with asgi.get_client(app) as client:
        try:
            yield client
        finally:
            # Schemathesis keeps an app's lifespan running for the whole process; this one
            # ends with its test (its housekeeping, its database connections).
            asgi.shutdown_lifespans()


def _bearer(client: asgi.ASGIClient, account: Account) -> dict[str, str]:
    r = client.post(
        "/api/v1/auth/login", json={"username": account.username, "password": account.password}
    )
    assert r.status_code == 200, r.text
    r = client.post(
        "/api/v1/auth/factor",
        json={"pending_token": r.json()["pending_token"], "code": account.code()},
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_as_documented(role: str, fuzz_client, db, state) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, state)
    accounts = {
        "technician": world.tech,
        "customer_admin": world.gp_admin,
        "vendor_admin": world.vendor_admin,
        "operator": world.operator,
    }
    headers = _bearer(fuzz_client, accounts[role]) if role in accounts else {}
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", fuzz_client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: (op.method.upper(), op.path) in LAST)
    assert len(operations) > 50, "the document lost its operations"

    failures: list[str] = []
    sent = 0
    started = time.monotonic()
    for operation in operations:
        strategy = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            nonlocal sent
            sent += 1
            case.call_and_validate(session=fuzz_client, headers=headers, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # each operation's, not just the first
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    took = time.monotonic() - started
    print(f"\napi fuzz {role}: {len(operations)} operations, {sent} requests, {took:.1f} s")
    assert not failures, "\n\n".join(failures)
