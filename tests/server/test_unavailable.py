"""A database that cannot take the request is a 503 that says nothing was done, for the
API and for the pages alike; a fault of the code stays the 500 it is."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeout
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from fjernhjelp.server.unavailable import Unavailable, classify
from tests.server.test_problems import assert_problem


def sqlite_error(code: int) -> OperationalError:
    orig = sqlite3.OperationalError("database or disk is full")
    orig.sqlite_errorcode = code  # type: ignore[attr-defined]
    return OperationalError("INSERT INTO audit_events ...", {}, orig)


def test_what_counts_as_an_outage() -> None:
    assert classify(sqlite_error(sqlite3.SQLITE_FULL)) is Unavailable.STORAGE_FULL
    assert classify(sqlite_error(sqlite3.SQLITE_CANTOPEN)) is Unavailable.DATABASE
    assert classify(PoolTimeout("QueuePool limit reached")) is Unavailable.DATABASE
    unique = sqlite3.IntegrityError("UNIQUE constraint failed")
    unique.sqlite_errorcode = sqlite3.SQLITE_CONSTRAINT  # type: ignore[attr-defined]
    assert classify(IntegrityError("INSERT", {}, unique)) is None
    assert classify(ValueError("not the database")) is None
    # Several nodes: Redis away is an outage too; a Redis answer refusing a command is not.
    assert classify(RedisConnectionError("Connection refused")) is Unavailable.CLUSTER
    assert classify(RedisTimeout("Timeout reading from socket")) is Unavailable.CLUSTER
    assert classify(ResponseError("WRONGTYPE")) is None


@pytest.fixture
def failing(app):  # type: ignore[no-untyped-def]
    def full() -> None:
        raise sqlite_error(sqlite3.SQLITE_FULL)

    def bug() -> None:
        unique = sqlite3.IntegrityError("UNIQUE constraint failed")
        unique.sqlite_errorcode = sqlite3.SQLITE_CONSTRAINT  # type: ignore[attr-defined]
        raise IntegrityError("INSERT", {}, unique)

    app.add_api_route("/api/v1/test-full", full)
    app.add_api_route("/test-full", full)
    app.add_api_route("/api/v1/test-bug", bug)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_the_answers(failing: TestClient) -> None:
    body = assert_problem(failing.get("/api/v1/test-full"), 503, "storage_full")
    assert "Nothing was done" in body["detail"]
    page = failing.get("/test-full", headers={"accept-language": "nb"})
    assert page.status_code == 503 and page.headers["retry-after"]
    assert "Ingenting ble gjort" in page.text
    assert failing.get("/api/v1/test-bug").status_code == 500
