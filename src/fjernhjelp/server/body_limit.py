"""A ceiling on request bodies, enforced before anything reads them.

Pure ASGI, outside the framework: a declared Content-Length over the route's limit is
answered 413 without reading a byte of the body, and a body without one (chunked) is
counted as it arrives and cut off at the limit, so neither is ever held whole or parsed.
The limit is small by default; a route that needs more is named in ``ROUTE_LIMITS``
(tests/server/test_exhaustion.py checks every entry names a real route).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fjernhjelp.i18n import Translator
from fjernhjelp.server.deps import translator
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.probes import Kind
from fjernhjelp.server.problems import problem
from fjernhjelp.server.security import client_address

DEFAULT_LIMIT = 64 * 1024  # every JSON body and form the service takes fits many times
# Terms of use: two texts of up to 100,000 characters each, form-encoded.
TERMS_LIMIT = 1024 * 1024
ROUTE_LIMITS: dict[tuple[str, str], int] = {
    ("POST", "/api/v1/terms"): TERMS_LIMIT,
    ("POST", "/portal/ops/terms"): TERMS_LIMIT,
}


class BodyTooLarge(Exception):
    """Raised into the application when it reads past the limit."""


def limit_for(method: str, path: str) -> int:
    return ROUTE_LIMITS.get((method, path.rstrip("/") or "/"), DEFAULT_LIMIT)


def _declared_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["method"], scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit)
            return

        received = 0
        exceeded = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the application made of the cut body, ours goes out
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        request = Request(scope, receive)
        state = request.app.state.fjh
        peer = scope["client"][0] if scope.get("client") else None
        address = client_address(peer, request.headers.get("x-forwarded-for"), state.settings)
        state.probes.note(address, Kind.BODY_TOO_LARGE, scope["method"], scope["path"], state.now())
        response: Response
        if scope["path"].startswith("/api/"):
            response = problem(
                scope["path"],
                413,
                "error.too_large",
                Translator("en")("error.too_large", limit=limit // 1024),
                headers={"Connection": "close"},
            )
        else:
            t = translator(request, state)
            response = render(
                request,
                t,
                "message.html",
                status_code=413,
                title=t("error.too_large_title"),
                message=t("error.too_large", limit=limit // 1024),
            )
            response.headers["Connection"] = "close"
        await response(scope, receive, send)
