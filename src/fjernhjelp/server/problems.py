"""Every refusal, answered once: a page for a browser, a problem for the API.

The API's one shape is RFC 9457 problem details (``application/problem+json``, described
in docs/api.md and in the OpenAPI document): ``type`` is ``about:blank``, so ``title`` is
the HTTP status phrase; ``reason`` is the stable key to act on; ``detail`` the English
sentence for it; ``instance`` the path; ``errors`` only for a malformed request. Pages
answer as they did: the localised message page, or a redirect to the login.

What a refusal does besides answering stays here as before: unknown endpoints probed and
anonymous CSRF refusals are counted (server/probes.py), a CSRF refusal with someone's
session cookie is audited.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from fjernhjelp.auth import guard
from fjernhjelp.auth.logins import ClientInfo
from fjernhjelp.i18n import Translator, catalogue, negotiate
from fjernhjelp.refusals import NotAllowed, NotFound, Refusal
from fjernhjelp.server import probes, unavailable
from fjernhjelp.server.api.refusals import PROBLEM_JSON, REFUSALS, Problem
from fjernhjelp.server.deps import (
    UNSAFE_METHODS,
    CsrfRefused,
    Forbidden,
    LoginRequired,
    get_client,
    session_cookie,
    translator,
)
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.state import AppState

PROBLEM_TYPE = "about:blank"
TRY_AGAIN_LATER = 1013  # RFC 6455 close code

# The reason of a refusal that carries none of its own (the framework's HTTPException).
_STATUS_REASONS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "not_allowed",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "too_many_requests",
    503: "unavailable",
}


def wants_json(path: str) -> bool:
    return path.startswith("/api/")


def _english(key: str, params: Mapping[str, object] | None = None) -> str | None:
    if key not in catalogue():
        return None
    return Translator("en")(key, **(params or {}))


def problem(
    path: str,
    status: int,
    reason: str,
    detail: str | None = None,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The one JSON answer to a refusal. ``detail`` defaults to the status's sentence."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE,
        "title": _english(f"problem.title.{status}") or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or _english(f"problem.detail.{status}") or HTTPStatus(status).phrase,
        "reason": reason,
        "instance": path,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def refusal_problem(path: str, exc: Refusal) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return problem(
        path,
        exc.status,
        exc.answer_reason,
        _english(exc.sentence_key, exc.params),
        headers=headers,
    )


def _message_page(
    request: Request, status: int, title_key: str, message: str, headers: Mapping[str, str] | None
) -> Response:
    t = translator(request, request.app.state.fjh)
    response = render(
        request, t, "message.html", status_code=status, title=t(title_key), message=message
    )
    response.headers.update(headers or {})
    return response


def _not_found_page(request: Request, status: int = 404) -> Response:
    t = translator(request, request.app.state.fjh)
    return _message_page(request, status, "error.not_found_title", t("error.not_found"), None)


def _forbidden_page(request: Request) -> Response:
    t = translator(request, request.app.state.fjh)
    return _message_page(request, 403, "error.forbidden_title", t("error.forbidden"), None)


def _note_probe(state: AppState, request: Request, kind: str) -> None:
    # Counted, not written: see server/probes.py.
    address = get_client(request).source_address
    state.probes.note(address, kind, request.method, request.url.path, state.now())


def _csrf_refused_with_cookie(
    state: AppState,
    db: Session,
    request: Request,
    client: ClientInfo,
    token: str,
    exc: CsrfRefused,
    anonymous: str,
) -> None:
    # Who it was (if anybody) is auth.guard's to find and audit.
    if not guard.csrf_refused(
        db,
        token,
        policy=state.login.policy,
        now=state.now(),
        reason=exc.reason,
        source_address=client.source_address,
        method=request.method,
        path=request.url.path,
    ):
        _note_probe(state, request, anonymous)
    db.commit()


def install(app: FastAPI) -> None:
    """Map every refusal of ``app`` once, and document the problem shape in its OpenAPI."""

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={target}", status_code=303)

    @app.exception_handler(Refusal)
    async def _refused(request: Request, exc: Refusal) -> Response:
        if wants_json(request.url.path):
            return refusal_problem(request.url.path, exc)
        # An id of another organisation must not be told apart from one that does not
        # exist: exactly what an unknown path answers.
        if isinstance(exc, NotFound):
            return _not_found_page(request)
        if isinstance(exc, NotAllowed):
            return _forbidden_page(request)
        t = translator(request, app.state.fjh)
        key = (
            exc.sentence_key if exc.sentence_key in catalogue() else f"problem.detail.{exc.status}"
        )
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return _message_page(
            request, exc.status, "portal.refused_title", t(key, **exc.params), headers
        )

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        if wants_json(request.url.path):
            return problem(request.url.path, 403, "not_allowed")
        return _forbidden_page(request)

    @app.exception_handler(CsrfRefused)
    async def _csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        state: AppState = app.state.fjh
        client = get_client(request)
        token = request.cookies.get(session_cookie(state))
        # Nobody's session was used: nothing could have happened on anyone's behalf, so
        # this is probing, counted per address (without touching the database).
        anonymous = f"{probes.Kind.CSRF_ANONYMOUS}:{exc.reason}"
        if not token:
            _note_probe(state, request, anonymous)
        else:
            with state.db_sessions() as db:
                _csrf_refused_with_cookie(state, db, request, client, token, exc, anonymous)
        if wants_json(request.url.path):
            return problem(request.url.path, 403, exc.reason, _english("problem.detail.csrf"))
        t = translator(request, state)
        return _message_page(request, 403, "error.csrf_title", t("error.csrf"), None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Only when no route matched: a 404 for an unknown object id is the endpoint's
        # own refusal, audited by the endpoint.
        no_route = "endpoint" not in request.scope
        if exc.status_code in (404, 405) and request.method in UNSAFE_METHODS and no_route:
            # A state-changing request to an endpoint that does not exist is a probe
            # (setup wizards, admin creation): refuse it and count it for the log.
            _note_probe(app.state.fjh, request, probes.Kind.UNKNOWN_ENDPOINT)
        if wants_json(request.url.path) or exc.status_code not in (404, 405):
            status = exc.status_code
            # The framework's own detail is the status phrase; a route's is a sentence.
            said = exc.detail if exc.detail != HTTPStatus(status).phrase else None
            return problem(
                request.url.path,
                status,
                _STATUS_REASONS.get(status, f"http_{status}"),
                said,
                headers=getattr(exc, "headers", None),
            )
        return _not_found_page(request, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # Never echo the submitted values back: a form may hold a password.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return problem(
            request.url.path,
            422,
            "invalid_request",
            _english("problem.detail.invalid_request"),
            errors=errors,
        )

    @app.exception_handler(DBAPIError)
    @app.exception_handler(DisconnectionError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeout)
    async def _database_failed(request: Request | WebSocket, exc: Exception) -> Response | None:
        kind = unavailable.classify(exc)
        if kind is None:
            raise exc  # a fault of the code: the 500 it is
        if isinstance(request, WebSocket):
            # An agent's link or a relay leg: "try again later", which the agent does.
            unavailable.log(kind, exc, "WEBSOCKET", request.url.path)
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await request.close(code=TRY_AGAIN_LATER)
            return None
        unavailable.log(kind, exc, request.method, request.url.path)
        headers = {"Retry-After": str(unavailable.RETRY_AFTER_SECONDS)}
        if wants_json(request.url.path):
            sentence = _english(kind.sentence_key)
            return problem(request.url.path, 503, kind.value, sentence, headers=headers)
        # No person is looked up: that would ask the database again.
        state: AppState = app.state.fjh
        language = negotiate(
            request.cookies.get("fjh_lang"),
            None,
            request.headers.get("accept-language"),
            state.settings.default_language,
        )
        t = Translator(language)
        response = render(
            request,
            t,
            "message.html",
            status_code=503,
            title=t("unavailable.title"),
            message=t(kind.sentence_key),
            user=None,
        )
        response.headers.update(headers)
        return response

    app.openapi = _documented(app, app.openapi)  # type: ignore[method-assign]


def _documented(app: FastAPI, build: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document with the Problem schema, under application/problem+json,
    for every refusal status of every /api/v1 operation."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        shapes = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(shapes.pop("$defs", {}))
        components["Problem"] = shapes
        content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith("/api/v1/"):
                continue
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, documented in REFUSALS.items():
                    own = responses.get(str(status), {})
                    responses[str(status)] = {
                        "description": own.get("description") or documented["description"],
                        "content": content,
                    }
        # FastAPI's own shape for a 422 is no longer answered anywhere.
        if "#/components/schemas/HTTPValidationError" not in str(schema["paths"]):
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    return openapi
