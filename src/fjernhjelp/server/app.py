"""The ASGI application: pages, API, static files, hardening and error pages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

from fastapi import Depends, FastAPI, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from fjernhjelp import __version__
from fjernhjelp.audit import forward
from fjernhjelp.config import Settings
from fjernhjelp.control.package import fingerprint
from fjernhjelp.logs import fault
from fjernhjelp.portal import revocations, sweep
from fjernhjelp.server import agent_listener, browser_libs, probes, problems, relay_port
from fjernhjelp.server.api import accounts as api_accounts
from fjernhjelp.server.api import agents as api_agents
from fjernhjelp.server.api import agreements as api_agreements
from fjernhjelp.server.api import audit as api_audit
from fjernhjelp.server.api import auth as api_auth
from fjernhjelp.server.api import grants as api_grants
from fjernhjelp.server.api import groups as api_groups
from fjernhjelp.server.api import machines as api_machines
from fjernhjelp.server.api import me as api_me
from fjernhjelp.server.api import notifications as api_notifications
from fjernhjelp.server.api import organisations as api_organisations
from fjernhjelp.server.api import packages as api_packages
from fjernhjelp.server.api import support as api_support
from fjernhjelp.server.api import terms as api_terms
from fjernhjelp.server.api.refusals import REFUSALS
from fjernhjelp.server.body_limit import BodyLimit
from fjernhjelp.server.deps import (
    csrf_protect,
)
from fjernhjelp.server.health import router as health_router
from fjernhjelp.server.housekeeping import (
    LATE_ENDS_EVERY,
    Housekeeping,
    Scheduled,
    late_ends_job,
    support_expiry_job,
)
from fjernhjelp.server.metrics_endpoint import LoopLag
from fjernhjelp.server.metrics_endpoint import router as metrics_router
from fjernhjelp.server.no_nul import refuse_nul
from fjernhjelp.server.pages import (
    account,
    auth,
    console_session,
    home,
    ops,
    people,
    portal,
    portal_agreements,
    portal_grants,
    portal_groups,
    portal_machines,
    portal_packages,
    portal_terms,
    support,
)
from fjernhjelp.server.runtime import AccessRuntime
from fjernhjelp.server.security import CsrfSeedCookie, SecurityHeaders, relay_origin
from fjernhjelp.server.state import AppState, build_state

_log = logging.getLogger(__name__)
STATIC = Path(__file__).parents[1] / "web" / "static"
PAGE_MODULES = (
    auth,
    account,
    home,
    portal,
    portal_terms,
    people,
    portal_groups,
    portal_agreements,
    portal_grants,
    portal_packages,
    portal_machines,
    ops,
    console_session,
    support,
)


API_MODULES = (
    api_auth,
    api_me,
    api_audit,
    api_organisations,
    api_accounts,
    api_terms,
    api_groups,
    api_agreements,
    api_grants,
    api_notifications,
    api_machines,
    api_packages,
    api_agents,
    api_support,
)


def create_app(
    settings: Settings | None = None, state: AppState | None = None, *, periodic: bool = False
) -> FastAPI:
    """``periodic``: also run the portal's expiry sweep on a timer (the real server does;
    tests sweep explicitly, on their own clock)."""
    if state is None:
        state = build_state(settings or Settings())
    settings = state.settings

    housekeeping = Housekeeping(state)
    housekeeping.add(
        Scheduled(
            "audit_probes",
            lambda db, now: _flush_due_probes(state, db, now),
            timedelta(seconds=settings.probe_audit_seconds),
        )
    )
    runtime = AccessRuntime(state)
    loop_lag = LoopLag()
    housekeeping.add(
        Scheduled(
            "support_expiry",
            support_expiry_job(
                state, lambda session_id, why: runtime.hub.cut(session_id, session_id, why)
            ),
            timedelta(seconds=settings.support_sweep_seconds),
        )
    )

    late_ends = runtime.relay_endpoint.late_ends
    housekeeping.add(Scheduled("late_session_ends", late_ends_job(late_ends), LATE_ENDS_EVERY))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        unsubscribe = revocations.log_revocations(state.revocations)
        sweeper = None
        interval = state.settings.sweep_interval_seconds
        if periodic and interval > 0:
            sweeper = asyncio.create_task(
                sweep.every(
                    interval,
                    state.db_sessions,
                    state.now,
                    timedelta(days=state.settings.inactive_user_days),
                )
            )
        await runtime.start()
        await housekeeping.start()
        lean = None
        if state.settings.agent_bind:
            host, port = state.settings.agent_bind.rsplit(":", 1)
            lean = await agent_listener.start(runtime.hub, host.strip("[]"), int(port))
        relay_lean = None
        if state.settings.relay_bind:
            host, port = state.settings.relay_bind.rsplit(":", 1)
            relay_lean = await relay_port.start(
                state, runtime.relay_endpoint, host.strip("[]"), int(port)
            )
        loop_lag.start()
        try:
            yield
        finally:
            await loop_lag.stop()
            if lean is not None:
                lean.close()
                await lean.wait_closed()
            if relay_lean is not None:
                relay_lean.close()  # running sessions end with the process, as on the main port
            await housekeeping.stop()
            await runtime.stop()
            # A last try for the ends the database missed (server/late_ends.py).
            await housekeeping.run_logged("late_session_ends")
            await run_in_threadpool(_flush_all_probes, state)
            unsubscribe()
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper

    app = FastAPI(
        lifespan=lifespan,
        title="fjernhjelp",
        version=__version__,
        docs_url="/api/v1/docs",
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
        # Fail closed: every unsafe method on every route is CSRF-checked unless its
        # endpoint is marked security.csrf_exempt (tests/server/test_csrf_everywhere.py).
        # Likewise every request's text is checked for NUL characters (server/no_nul.py).
        dependencies=[Depends(csrf_protect), Depends(refuse_nul)],
    )
    app.state.fjh = state
    app.state.housekeeping = housekeeping
    app.state.access = runtime
    app.state.loop_lag = loop_lag
    if settings.audit_syslog:
        forward.install(
            state.db_sessions,
            forward.SyslogForwarder(settings.audit_syslog),
            fingerprint(state.keys.signing.public_key()),
        )

    app.include_router(health_router)
    app.include_router(metrics_router)
    for module in API_MODULES:
        app.include_router(module.router, prefix="/api/v1", responses=REFUSALS)
    for page in PAGE_MODULES:
        app.include_router(page.router, include_in_schema=False)
    browser_libs.mount(app, settings.browser_libs_dir)
    app.mount("/static", browser_libs.ModuleFiles(directory=STATIC), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        # Browsers ask for it on every page whatever the page links; base.html links the SVG.
        return FileResponse(
            STATIC / "favicon.ico",
            media_type="image/x-icon",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.websocket("/agent/control")
    async def agent_control(websocket: WebSocket) -> None:
        await runtime.hub.serve(websocket)

    @app.websocket("/relay/{session_id}")
    async def relay(websocket: WebSocket, session_id: str) -> None:
        await runtime.relay_endpoint.serve(websocket, session_id)

    problems.install(app)
    app.add_middleware(CsrfSeedCookie, settings=settings)
    app.add_middleware(BodyLimit)  # outside the framework: nothing reads a body first
    app.add_middleware(
        SecurityHeaders, hsts=settings.secure_cookies, relay_origin=relay_origin(settings)
    )
    return app


def _flush_due_probes(state: AppState, db: Session, now: datetime) -> None:
    probes.flush(db, state.probes, now)


def _flush_all_probes(state: AppState) -> None:
    try:
        with state.db_sessions() as db:
            probes.flush(db, state.probes, state.now(), everything=True)
    except Exception as exc:  # stopping goes on
        _log.error("could not write the last probe counts at shutdown: %s", fault(exc))
