"""Liveness for load balancers: ok only when the database answers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from fjernhjelp.db.engine import ping
from fjernhjelp.server.deps import State

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz(state: State) -> JSONResponse:
    if await run_in_threadpool(ping, state.engine):
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
