"""A small typed client for the server's JSON API, used by the technician CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class ApiError(Exception):
    """The server refused; ``error`` is its machine-readable reason."""

    def __init__(self, status: int, error: str, detail: str | None = None) -> None:
        super().__init__(f"{status} {error}" + (f": {detail}" if detail else ""))
        self.status = status
        self.error = error
        self.detail = detail


@dataclass(frozen=True)
class PendingLogin:
    token: str
    factors: list[str]


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") or body.get("reason") or str(body.get("detail") or "refused")
    detail = body.get("detail") if isinstance(body.get("detail"), str) else None
    raise ApiError(response.status_code, error, detail)


class Api:
    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        verify: bool | str = True,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self._http = httpx.Client(
            base_url=self.server + "/api/v1", headers=headers, timeout=timeout, verify=verify
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def login(self, username: str, password: str) -> PendingLogin:
        r = self._http.post("/auth/login", json={"username": username, "password": password})
        _raise_for(r)
        body = r.json()
        return PendingLogin(body["pending_token"], body["factors"])

    def factor(self, pending_token: str, code: str) -> dict[str, Any]:
        r = self._http.post("/auth/factor", json={"pending_token": pending_token, "code": code})
        _raise_for(r)
        return r.json()

    def logout(self) -> None:
        _raise_for(self._http.post("/auth/logout"))

    def me(self) -> dict[str, Any]:
        r = self._http.get("/me")
        _raise_for(r)
        return r.json()

    def get(self, path: str, **params: Any) -> Any:
        r = self._http.get(path, params=params)
        _raise_for(r)
        return r.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        r = self._http.post(path, json=body)
        _raise_for(r)
        return r.json()
