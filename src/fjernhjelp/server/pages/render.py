"""Rendering templates with the translator, the CSRF token and the caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from fjernhjelp import __version__
from fjernhjelp.i18n import Translator
from fjernhjelp.server.security import csrf_token

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parents[2] / "web" / "templates"))


def render(
    request: Request, t: Translator, name: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    state = request.app.state.fjh
    seed = request.scope.get("state", {}).get("csrf_seed")
    context.setdefault("user", getattr(request.state, "user", None))
    return TEMPLATES.TemplateResponse(
        request,
        name,
        {
            "t": t,
            "lang": t.language,
            "csrf_token": csrf_token(state.keys.cookie, seed) if seed else "",
            "version": __version__,
            **context,
        },
        status_code=status_code,
    )
