"""The technician's Support sessions from the command line: thin over the API.

The server decides everything (which customers, whose session, when a tunnel may open);
this module finds things by the names a person types, and waits for the end user.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from fjernhjelp.technician.api import Api, ApiError
from fjernhjelp.technician.tunnel import OpenedSupport, open_support_session

# States in which the end user may still come (remote/support.py State).
_WAITING = {"waiting"}
# The client logs in on the control link a moment after the code was entered; until
# then the server answers a tunnel request with one of these (the listed state, checked
# before each try, tells a session that will never be ready).
_NOT_YET = {"client_offline", "support_not_ready"}
FINAL = {"expired", "cancelled", "ended"}


class NotFound(Exception):
    """No such customer or Support session of the caller's (the text says which)."""


class SessionOver(Exception):
    """The Support session can no longer be joined or connected to; ``state`` says why."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


def customers(api: Api) -> list[dict[str, Any]]:
    """Customers whose agreement in force lets the caller start a Support session."""
    return list(api.get("/support-customers"))


def resolve_customer(api: Api, name: str) -> str:
    """A customer's id from its id, organisation number or (unambiguous) name.

    Only customers the server offers are matched; anything else is passed on as an id
    when it is one, so that the server refuses it with its own reason (and audits it)."""
    offered = customers(api)
    wanted = name.strip().casefold()
    matches = [
        c for c in offered if wanted in (str(c["id"]), c["orgnr"], c["name"].casefold())
    ] or [c for c in offered if wanted in c["name"].casefold()]
    if len(matches) == 1:
        return str(matches[0]["id"])
    if len(matches) > 1:
        names = ", ".join(c["name"] for c in matches)
        raise NotFound(f"{name!r} matches several customers ({names}); use the id or number")
    try:
        return str(uuid.UUID(name))
    except ValueError:
        raise NotFound(
            f"no customer {name!r} among those whose agreement allows you Support"
        ) from None


def create(api: Api, customer_id: str) -> dict[str, Any]:
    return dict(api.post("/support-sessions", {"customer_org_id": customer_id}))


def sessions(api: Api) -> list[dict[str, Any]]:
    """The caller's own Support sessions, newest first."""
    return list(api.get("/support-sessions"))


def resolve_session(api: Api, ident: str) -> dict[str, Any]:
    """One of the caller's Support sessions by its id or a unique beginning of it (the
    list shows ids).

    A whole id that is not among the caller's own is passed on as it is, with no
    customer or state: the server then refuses it with its own answer and audits the
    attempt, as it would any other client's."""
    wanted = ident.strip().lower()
    with contextlib.suppress(ValueError):
        whole = str(uuid.UUID(wanted))
        found = [s for s in sessions(api) if str(s["id"]) == whole]
        return found[0] if found else {"id": whole, "customer": "", "state": None}
    if len(wanted) < 4:
        raise NotFound("give the session's id, or at least its first four characters")
    matches = [s for s in sessions(api) if str(s["id"]).lower().startswith(wanted)]
    if len(matches) != 1:
        raise NotFound(
            f"no Support session of yours with an id beginning {ident!r}"
            if not matches
            else f"{ident!r} matches several of your Support sessions; give more of the id"
        )
    return matches[0]


def cancel(api: Api, support_id: str) -> dict[str, Any]:
    return dict(api.post(f"/support-sessions/{support_id}/cancel", {}))


def state_of(api: Api, support_id: str) -> str | None:
    """The session's state, or None when it is not among the caller's own."""
    for row in sessions(api):
        if str(row["id"]) == support_id:
            return str(row["state"])
    return None


async def open_when_joined(
    api: Api,
    support_id: str,
    *,
    on_state: Callable[[str], None] | None = None,
    on_control: Callable[[dict[str, Any]], None] | None = None,
    poll: float = 0.5,
    patience: float | None = None,
) -> OpenedSupport:
    """Wait until the end user has entered the code and their client is online, then
    open the tunnel. ``on_state`` hears each state the server reports (for a spinner).

    Raises SessionOver when the session expires, is cancelled or ends meanwhile, and
    TimeoutError after ``patience`` seconds (None: until the code's own expiry)."""
    deadline = None if patience is None else time.monotonic() + patience
    last = ""
    while True:
        state = await asyncio.to_thread(state_of, api, support_id)
        if state is None:
            # Not ours, or no such session: the server's refusal (audited) says so.
            return await open_support_session(api, support_id, on_control=on_control)
        if state != last and on_state is not None:
            on_state(state)
        last = state
        if state in FINAL or state == "running":
            # running: a tunnel was asked for already; each tunnel is its own check words,
            # and the server allows one per session.
            raise SessionOver(state)
        if state not in _WAITING:
            try:
                return await open_support_session(api, support_id, on_control=on_control)
            except ApiError as exc:
                if exc.error not in _NOT_YET:
                    raise
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("the end user did not join in time")
        await asyncio.sleep(poll)


__all__ = [
    "FINAL",
    "NotFound",
    "SessionOver",
    "cancel",
    "create",
    "customers",
    "open_when_joined",
    "resolve_customer",
    "resolve_session",
    "sessions",
]
