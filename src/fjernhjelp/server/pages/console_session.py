"""The technician's session view: the page that opens the end-to-end tunnel to one
machine (static/js/console.js does the work; the server only renders the frame).

The machine's details, the ticket and the relay come from the JSON API when the page
runs, so this route needs nothing but the machine id and the texts."""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from fjernhjelp.i18n import Translator, catalogue
from fjernhjelp.server.deps import PageUser, T, require
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.security import csp_with_style_nonce, new_style_nonce

router = APIRouter()

_MACHINE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # the ticket's id syntax
TEXT_PREFIXES = ("session.",)


def session_texts(t: Translator) -> dict[str, str]:
    """Every text the page's JavaScript shows, in the caller's language, placeholders
    left for the page to fill."""
    return {key: t(key) for key in catalogue() if key.startswith(TEXT_PREFIXES)}


def session_config(
    t: Translator, machine_id: str, time_zone: str = "Europe/Oslo"
) -> dict[str, object]:
    return {
        "machine_id": machine_id,
        "time_zone": time_zone,
        "machines_url": "/api/v1/machines",
        "sessions_url": "/api/v1/sessions",
        "lang": t.language,
        "texts": session_texts(t),
    }


def support_session_config(
    t: Translator, support_id: str, time_zone: str = "Europe/Oslo"
) -> dict[str, object]:
    """What console_support.js needs: where to poll the Support session and ask for its
    tunnel, and the same texts as an Access session."""
    base = f"/api/v1/support-sessions/{support_id}"
    return {
        "support_id": support_id,
        "support_url": base,
        "tunnel_url": f"{base}/tunnel",
        "time_zone": time_zone,
        "lang": t.language,
        "texts": session_texts(t),
        # The short names the console's list and the code's card use for each state.
        "states": {state: t(f"support.state.{state}") for state in SUPPORT_STATES},
    }


SUPPORT_STATES = ("waiting", "joined", "running", "expired", "cancelled", "ended")


def with_style_nonce(response: Response, nonce: str) -> Response:
    """The session pages' policy: noVNC and xterm.js add <style> elements (security.py)."""
    response.headers["Content-Security-Policy"] = csp_with_style_nonce(nonce)
    return response


@router.get("/console/connect/{machine_id}", response_class=HTMLResponse)
def session_view(request: Request, t: T, user: PageUser, machine_id: str) -> Response:
    require(user, technician=True)
    if not _MACHINE_ID.fullmatch(machine_id):
        raise HTTPException(status_code=404)
    nonce = new_style_nonce()
    response = render(
        request,
        t,
        "console_session.html",
        machine_id=machine_id,
        config=session_config(t, machine_id, request.app.state.fjh.settings.time_zone),
        style_nonce=nonce,
    )
    return with_style_nonce(response, nonce)
