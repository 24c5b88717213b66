"""The Caller (who, when, from where, with which factor) for page and API handlers."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends

from fjernhjelp.caller import Caller
from fjernhjelp.server.api.deps import ApiSession, ApiUser
from fjernhjelp.server.deps import BrowserSession, Client, PageUser, State
from fjernhjelp.server.state import AppState


def api_caller(user: ApiUser, row: ApiSession, state: State, client: Client) -> Caller:
    # The factor the login session was completed with (LoginSession.factor_kind).
    return Caller.of_person(user, state.now(), client.source_address, row.factor_kind)


def page_caller(user: PageUser, row: BrowserSession, state: State, client: Client) -> Caller:
    # PageUser has already refused a request without a session, so ``row`` is set.
    factor = row.factor_kind if row is not None else None
    return Caller.of_person(user, state.now(), client.source_address, factor)


ApiCaller = Annotated[Caller, Depends(api_caller)]
PageCaller = Annotated[Caller, Depends(page_caller)]


def link_lifetime(state: AppState) -> timedelta:
    return timedelta(hours=state.settings.enrolment_link_hours)
