"""The ASGI application: pages, API, static files, hardening and error pages."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from fjernhjelp import __version__
from fjernhjelp.audit import forward
from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth import sessions
from fjernhjelp.config import Settings
from fjernhjelp.server import browser_libs
from fjernhjelp.server.api import audit as api_audit
from fjernhjelp.server.api import auth as api_auth
from fjernhjelp.server.api import me as api_me
from fjernhjelp.server.deps import (
    UNSAFE_METHODS,
    CsrfRefused,
    Forbidden,
    LoginRequired,
    get_client,
    session_cookie,
    translator,
)
from fjernhjelp.server.health import router as health_router
from fjernhjelp.server.housekeeping import Housekeeping
from fjernhjelp.server.pages import account, auth, console_session, home, portal
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.security import CsrfSeedCookie, SecurityHeaders
from fjernhjelp.server.state import AppState, build_state

STATIC = Path(__file__).parents[1] / "web" / "static"


def create_app(settings: Settings | None = None, state: AppState | None = None) -> FastAPI:
    if state is None:
        state = build_state(settings or Settings())
    settings = state.settings

    housekeeping = Housekeeping(state)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await housekeeping.start()
        try:
            yield
        finally:
            await housekeeping.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="fjernhjelp",
        version=__version__,
        docs_url="/api/v1/docs",
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.fjh = state
    app.state.housekeeping = housekeeping
    if settings.audit_syslog:
        forward.install(state.sessions, forward.SyslogForwarder(settings.audit_syslog))

    app.include_router(health_router)
    for module in (api_auth, api_me, api_audit):
        app.include_router(module.router, prefix="/api/v1")
    for page in (auth, account, home, portal, console_session):
        app.include_router(page.router, include_in_schema=False)
    browser_libs.mount(app, settings.browser_libs_dir)
    app.mount("/static", browser_libs.ModuleFiles(directory=STATIC), name="static")

    _install_error_handlers(app)
    app.add_middleware(CsrfSeedCookie, settings=settings)
    app.add_middleware(SecurityHeaders, hsts=settings.secure_cookies)
    return app


def _audit_probe(state: AppState, request: Request, status: int) -> None:
    client = get_client(request)
    with state.sessions() as db:
        record(
            db,
            "security.unknown_endpoint",
            Outcome.DENIED,
            actor=Actor.named(None),
            reason="no_such_endpoint" if status == 404 else "method_not_allowed",
            source_address=client.source_address,
            details={"method": request.method, "path": request.url.path[:200]},
        )
        db.commit()


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={target}", status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "forbidden"}, status_code=403)
        t = translator(request, app.state.fjh)
        return render(
            request,
            t,
            "message.html",
            status_code=403,
            title=t("error.forbidden_title"),
            message=t("error.forbidden"),
        )

    @app.exception_handler(CsrfRefused)
    async def _csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        state: AppState = app.state.fjh
        client = get_client(request)
        with state.sessions() as db:
            # The refusal happens before the session is looked up; find who it was, so
            # the event names the account whose browser was used.
            row = sessions.find(
                db,
                request.cookies.get(session_cookie(state)),
                policy=state.login.policy,
                now=state.now(),
            )
            user = row.user if row else None
            record(
                db,
                "security.csrf_refused",
                Outcome.DENIED,
                actor=Actor.of(user) if user else Actor.named(None),
                reason=exc.reason,
                source_address=client.source_address,
                details={"method": request.method, "path": request.url.path},
            )
            db.commit()
        if _wants_json(request):
            return JSONResponse({"detail": "CSRF token missing or invalid"}, status_code=403)
        t = translator(request, state)
        return render(
            request,
            t,
            "message.html",
            status_code=403,
            title=t("error.csrf_title"),
            message=t("error.csrf"),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (404, 405) and request.method in UNSAFE_METHODS:
            # A state-changing request to an endpoint that does not exist is a probe
            # (setup wizards, admin creation): refuse it and leave a line in the log.
            _audit_probe(app.state.fjh, request, exc.status_code)
        if _wants_json(request) or exc.status_code not in (404, 405):
            return JSONResponse(
                {"detail": exc.detail},
                status_code=exc.status_code,
                headers=getattr(exc, "headers", None),
            )
        t = translator(request, app.state.fjh)
        return render(
            request,
            t,
            "message.html",
            status_code=exc.status_code,
            title=t("error.not_found_title"),
            message=t("error.not_found"),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # Never echo the submitted values back: a form may hold a password.
        errors = [
            {"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)
