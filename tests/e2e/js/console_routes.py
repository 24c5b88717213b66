"""The session view's server side for browser tests: the real template rendered with the
real catalogue, and the JSON API of the contract (machines, sessions) answered by the
test, so the page runs without the database parts of the server."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fjernhjelp import __version__
from fjernhjelp.i18n import Translator
from fjernhjelp.server.pages import portal_view  # noqa: F401 - registers the `when` filter
from fjernhjelp.server.pages.console_session import session_config, support_session_config
from fjernhjelp.server.pages.render import TEMPLATES

CSRF = "test-csrf-token"
MACHINE_ID = "9d3c2a1b-7e6f-4a5b-8c9d-0e1f2a3b4c5d"


class ConsoleApi:
    def __init__(self) -> None:
        self.machines: list[dict[str, Any]] = []
        # body -> (status, json); the test sets it per session
        self.answer: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]] = lambda body: (
            403,
            {"reason": "no_grant"},
        )
        self.requests: list[dict[str, Any]] = []
        # What GET /api/v1/support-sessions/{id} answers the Support page, as it polls.
        self.support: dict[str, Any] = {"state": "waiting", "client_ready": False}

    def routes(self) -> list[Route]:
        return [
            Route("/test/console/{machine_id}", self.page),
            Route("/test/machines", self.machines_page),
            Route("/api/v1/machines", self.list_machines),
            Route("/api/v1/sessions", self.create_session, methods=["POST"]),
            Route("/test/support/{support_id}", self.support_page),
            Route("/api/v1/support-sessions/{support_id}", self.support_show),
            Route(
                "/api/v1/support-sessions/{support_id}/tunnel",
                self.create_session,
                methods=["POST"],
            ),
        ]

    async def support_page(self, request: Request) -> Response:
        t = Translator(request.query_params.get("lang", "nb"))
        support_id = request.path_params["support_id"]
        return TEMPLATES.TemplateResponse(
            request,
            "console_support.html",
            {
                "t": t,
                "lang": t.language,
                "csrf_token": CSRF,
                "version": __version__,
                "user": None,
                "row": SimpleNamespace(id=support_id, code_expires_at=None),
                "created": None,
                "state": "waiting",
                "customer": "Legekontoret Fjordbyen",
                "live": True,
                "config": support_session_config(t, support_id),
                "style_nonce": "",
            },
        )

    async def support_show(self, request: Request) -> Response:
        return JSONResponse({"id": request.path_params["support_id"], **self.support})

    async def page(self, request: Request) -> Response:
        t = Translator(request.query_params.get("lang", "nb"))
        machine_id = request.path_params["machine_id"]
        return TEMPLATES.TemplateResponse(
            request,
            "console_session.html",
            {
                "t": t,
                "lang": t.language,
                "csrf_token": CSRF,
                "version": __version__,
                "user": None,
                "machine_id": machine_id,
                "config": session_config(t, machine_id),
            },
        )

    async def machines_page(self, request: Request) -> Response:
        t = Translator(request.query_params.get("lang", "nb"))
        return TEMPLATES.TemplateResponse(
            request,
            "console.html",
            {"t": t, "lang": t.language, "csrf_token": CSRF, "version": __version__, "user": None},
        )

    async def list_machines(self, request: Request) -> Response:
        return JSONResponse(self.machines)

    async def create_session(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"body": body, "csrf": request.headers.get("x-csrf-token")})
        if request.headers.get("x-csrf-token") != CSRF:
            return JSONResponse({"detail": "CSRF token missing or invalid"}, status_code=403)
        status, answer = self.answer(body)
        return JSONResponse(answer, status_code=status)
