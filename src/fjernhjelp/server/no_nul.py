"""No NUL character in any text a request carries.

PostgreSQL cannot store one in a text column and refuses the statement (a 500 where the
request was at fault); SQLite stores it, so the same request would mean different things
on the two databases. No field of ours has a use for it: refused at the door, as a
malformed request (422, reason invalid_request), before any service sees it. Found by
tests/server/test_api_fuzz.py.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from fastapi.exceptions import RequestValidationError
from starlette.requests import HTTPConnection, Request

from fjernhjelp.nul import ESCAPED, NUL, first_nul

_ERROR_TYPE = "nul_character"
_MESSAGE = "text may not contain the NUL character"


def _error(*loc: str | int) -> dict[str, Any]:
    return {"loc": loc, "msg": _MESSAGE, "type": _ERROR_TYPE}


async def refuse_nul(connection: HTTPConnection) -> None:
    if not isinstance(connection, Request):
        return  # WebSockets carry bytes the tunnel and the control link check themselves
    request = connection
    if NUL in unquote(request.url.path):
        raise RequestValidationError([_error("path")])
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            raise RequestValidationError([_error("query", name.replace(NUL, ""))])
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # Starlette keeps it for the endpoint
        for name, field in form.multi_items():
            if NUL in name or (isinstance(field, str) and NUL in field):
                raise RequestValidationError([_error("body", name.replace(NUL, ""))])
        return
    body = await request.body()  # kept for the endpoint too
    # A JSON string can hold a NUL only as the escape \u0000: the document is read only
    # when that text is there.
    if ESCAPED.encode() not in body:
        return
    try:
        document = json.loads(body)
    except ValueError:
        return  # not JSON: the endpoint refuses it as such
    found = first_nul(document, ("body",))
    if found is not None:
        clean = (p.replace(NUL, "") if isinstance(p, str) else p for p in found)
        raise RequestValidationError([_error(*clean)])
