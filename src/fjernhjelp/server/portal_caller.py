"""The portal's Caller (who, when, from where) for page and API handlers."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends

from fjernhjelp.portal.caller import Caller
from fjernhjelp.server.api.deps import ApiUser
from fjernhjelp.server.deps import Client, PageUser, State
from fjernhjelp.server.state import AppState


def api_caller(user: ApiUser, state: State, client: Client) -> Caller:
    return Caller(user, state.now(), client.source_address)


def page_caller(user: PageUser, state: State, client: Client) -> Caller:
    return Caller(user, state.now(), client.source_address)


ApiCaller = Annotated[Caller, Depends(api_caller)]
PageCaller = Annotated[Caller, Depends(page_caller)]


def link_lifetime(state: AppState) -> timedelta:
    return timedelta(hours=state.settings.enrolment_link_hours)
