"""What the portal's page modules share: date filters, notices after a redirect, and
running a change (its service audits a refusal) so that a refusal is shown instead of raised."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi.responses import RedirectResponse
from jinja2 import pass_context
from sqlalchemy.orm import Session

from fjernhjelp.i18n import Translator
from fjernhjelp.portal.errors import PortalError
from fjernhjelp.server.pages.render import TEMPLATES

T = TypeVar("T")

# ?notice=<key> after a redirect shows one of these; anything else shows nothing.
NOTICES = {
    "saved": "portal.saved",
    "changed": "people.changed",
    "terms_accepted": "terms.accepted",
    "terms_published": "terms.published_notice",
    "agreement_recorded": "agreement.recorded",
    "agreement_revoked": "agreement.revoked",
    "grant_created": "grant.created",
    "grant_revoked": "grant.revoked_notice",
    "registered": "organisation.registered",
    "package_revoked": "package.revoked_notice",
    "machine_removed": "machine.removed_notice",
}


def notice_text(t: Translator, notice: str | None) -> str | None:
    key = NOTICES.get(notice or "")
    return t(key) if key else None


def done(path: str, notice: str = "saved") -> RedirectResponse:
    return RedirectResponse(f"{path}?notice={notice}", status_code=303)


def settled(db: Session, change: Callable[[], T]) -> T | PortalError:
    """Run ``change``, a service that audits its own refusals, and commit; a rule's
    refusal is returned for the page to show. A missing object or role propagates."""
    try:
        result = change()
    except PortalError as exc:
        db.commit()  # the refusal's audit event, if its service recorded one
        return exc
    db.commit()
    return result


def _zone(ctx: Any) -> ZoneInfo:
    return ZoneInfo(ctx["request"].app.state.fjh.settings.time_zone)


@pass_context
def _day(ctx: Any, value: datetime | None) -> str:
    if value is None:
        return ""
    local = value.astimezone(_zone(ctx))
    return local.strftime("%d.%m.%Y") if ctx.get("lang") == "nb" else local.strftime("%Y-%m-%d")


@pass_context
def _last_day(ctx: Any, value: datetime | None) -> str:
    """An exclusive end shown as the last day it covers."""
    if value is None:
        return ""
    return _day(ctx, value - timedelta(microseconds=1))


@pass_context
def _when(ctx: Any, value: datetime | None) -> str:
    if value is None:
        return ""
    local = value.astimezone(_zone(ctx))
    fmt = "%d.%m.%Y %H:%M" if ctx.get("lang") == "nb" else "%Y-%m-%d %H:%M"
    return local.strftime(fmt)


@pass_context
def _moment(ctx: Any, value: datetime | str | None) -> str:
    """To the second, for the audit log (its events carry ISO strings)."""
    if not value:
        return ""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # stored as UTC
    local = when.astimezone(_zone(ctx))
    fmt = "%d.%m.%Y %H:%M:%S" if ctx.get("lang") == "nb" else "%Y-%m-%d %H:%M:%S"
    return local.strftime(fmt)


DEFAULT_TIME_ZONE = "Europe/Oslo"


@pass_context
def _zone_name(ctx: Any) -> str:
    """The configured zone as people say it ("norsk tid", "Oslo time")."""
    state = getattr(ctx["request"].app.state, "fjh", None)  # absent in the pages' test harness
    zone = state.settings.time_zone if state is not None else DEFAULT_TIME_ZONE
    t = ctx["t"]
    return t("time.oslo") if zone == "Europe/Oslo" else t("time.zone", zone=zone)


TEMPLATES.env.filters["moment"] = _moment
TEMPLATES.env.globals["zone_name"] = _zone_name
TEMPLATES.env.filters["day"] = _day
TEMPLATES.env.filters["last_day"] = _last_day
TEMPLATES.env.filters["when"] = _when
