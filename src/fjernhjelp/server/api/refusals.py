"""How the API answers a refusal, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Refusal(BaseModel):
    error: str  # a stable key, e.g. grant.preapproval_not_allowed
    detail: str  # the same in English words


class NotFoundBody(BaseModel):
    detail: str


REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"model": NotFoundBody, "description": "your role may not do this"},
    404: {"model": NotFoundBody, "description": "no such object (or not yours: same answer)"},
    409: {"model": Refusal, "description": "clashes with what exists"},
    422: {"model": Refusal, "description": "a rule refused it"},
}
