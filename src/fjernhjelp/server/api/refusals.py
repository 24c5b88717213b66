"""How the API answers a refusal, for the OpenAPI document: one shape, RFC 9457 problem
details (server/problems.py builds it, docs/api.md describes it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

PROBLEM_JSON = "application/problem+json"


class ProblemError(BaseModel):
    """One thing wrong with a request's form (never the value that was sent)."""

    loc: list[str | int] = Field(description='where, e.g. ["body", "group_id"]')
    msg: str
    type: str = Field(description="a stable key, e.g. uuid_parsing or missing")


class Problem(BaseModel):
    """Every refusal of the API: a rule, a role, an unknown object, a malformed request,
    a missing login, too many attempts."""

    type: str = Field(description='always "about:blank": the status and reason say it all')
    title: str = Field(description="the HTTP status phrase, e.g. Not Found")
    status: int
    detail: str = Field(description="an English sentence about this refusal")
    reason: str = Field(
        description="a stable key to act on, e.g. grant.duplicate, no_such_machine, "
        "unauthenticated, invalid_request"
    )
    instance: str = Field(description="the path that was asked for")
    errors: list[ProblemError] | None = Field(
        default=None, description="only for reason invalid_request: what is wrong where"
    )


# The statuses every /api/v1 route documents (server/problems.py gives each the Problem
# schema under application/problem+json); a route may say more in its own description.
REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the request body could not be read (e.g. not JSON)"},
    401: {"description": "not logged in (no valid bearer token or session)"},
    403: {"description": "your role may not do this, or a rule refused it for you"},
    404: {"description": "no such object (or not yours: same answer)"},
    409: {"description": "clashes with what exists"},
    413: {"description": "the request body is too large"},
    422: {"description": "a rule refused it, or the request is malformed (errors)"},
    429: {"description": "too many attempts; see Retry-After"},
    503: {
        "description": "the database cannot take the request now (unreachable, or no room "
        "to write the audit log): nothing was done; see Retry-After"
    },
}
