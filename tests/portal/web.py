"""Talking to the portal over HTTP in tests: API tokens and logged-in page clients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from tests.helpers import Account, csrf_from
from tests.server.test_pages_login import web_login


class Api:
    """A bearer-token API client for one account."""

    def __init__(self, client: TestClient, account: Account) -> None:
        self.client = client
        r = client.post(
            "/api/v1/auth/login",
            json={"username": account.username, "password": account.password},
        )
        assert r.status_code == 200, r.text
        r = client.post(
            "/api/v1/auth/factor",
            json={"pending_token": r.json()["pending_token"], "code": account.code()},
        )
        assert r.status_code == 200, r.text
        self.headers = {"Authorization": f"Bearer {r.json()['token']}"}

    def get(self, path: str, **kw):  # type: ignore[no-untyped-def]
        return self.client.get("/api/v1" + path, headers=self.headers, **kw)

    def post(self, path: str, json: object = None):  # type: ignore[no-untyped-def]
        return self.client.post("/api/v1" + path, headers=self.headers, json=json)

    def put(self, path: str, json: object):  # type: ignore[no-untyped-def]
        return self.client.put("/api/v1" + path, headers=self.headers, json=json)

    def patch(self, path: str, json: object):  # type: ignore[no-untyped-def]
        return self.client.patch("/api/v1" + path, headers=self.headers, json=json)

    def delete(self, path: str):  # type: ignore[no-untyped-def]
        return self.client.delete("/api/v1" + path, headers=self.headers)


@contextmanager
def browser(client: TestClient, account: Account) -> Iterator[TestClient]:
    """A separate cookie jar logged in as ``account`` (so several people can act)."""
    with TestClient(client.app, base_url="http://testserver", follow_redirects=False) as c:
        web_login(c, account)
        yield c


def form_post(client: TestClient, path: str, data: dict[str, object], page: str = "/portal"):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get(page).text)
    return client.post(path, data={**data, "csrf_token": token})
