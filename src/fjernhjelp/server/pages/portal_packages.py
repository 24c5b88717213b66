"""Installer packages: the list, making one for a group (the file is handed over once,
in the answer to the form), and revoking one after a confirmation page.

Admins of a receiving organisation and technicians of a vendor whose grant lets it make
packages both use these pages; ``access.packages`` decides per group and per package,
the page only offers. A technician sees and revokes only the packages it made."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from fjernhjelp.auth.models import User
from fjernhjelp.control.package import fingerprint
from fjernhjelp.machines import packages
from fjernhjelp.machines.models import InstallerPackage
from fjernhjelp.refusals import NotFound, PackageRefused
from fjernhjelp.server.deps import DB, Client, PageUser, State, T, require
from fjernhjelp.server.pages.portal_view import done, notice_text
from fjernhjelp.server.pages.render import render

router = APIRouter(prefix="/portal/packages")

DEFAULT_HOURS = 72
MAX_HOURS = int(packages.MAX_LIFETIME.total_seconds() // 3600)


def _server_fingerprint(state: State) -> str:
    return fingerprint(state.keys.signing.public_key())


def file_name(package: InstallerPackage) -> str:
    # ASCII only and short: it is typed into a terminal on the customer's machine.
    return f"fjernhjelp-{str(package.id)[:8]}.json"


def _list(
    request: Request,
    state: State,
    db: DB,
    t: T,
    user: User,
    status_code: int = 200,
    **extra: object,
) -> Response:
    now = state.now()
    rows = [(p, packages.state_of(db, p, now)) for p in packages.visible(db, user, now)]
    return render(
        request,
        t,
        "portal_packages.html",
        status_code=status_code,
        packages=rows,
        groups=packages.manageable_groups(db, user, now),
        fingerprint=_server_fingerprint(state),
        max_hours=MAX_HOURS,
        max_uses_limit=packages.MAX_USES,
        form=extra.pop("form", {"lifetime_hours": DEFAULT_HOURS, "max_uses": 1}),
        **extra,
    )


def _allowed(user: User) -> None:
    require(user, admin=True, technician=True)


@router.get("", response_class=HTMLResponse)
def packages_page(
    request: Request, state: State, db: DB, t: T, user: PageUser, notice: str | None = None
) -> Response:
    _allowed(user)
    return _list(request, state, db, t, user, notice=notice_text(t, notice))


@router.post("", response_class=HTMLResponse)
def create(
    request: Request,
    state: State,
    db: DB,
    t: T,
    client: Client,
    user: PageUser,
    group_id: Annotated[uuid.UUID, Form()],
    lifetime_hours: Annotated[int, Form()] = DEFAULT_HOURS,
    max_uses: Annotated[int, Form()] = 1,
    label: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    _allowed(user)
    form = {"group_id": group_id, "lifetime_hours": lifetime_hours, "max_uses": max_uses}
    try:
        made = packages.create(
            db,
            user=user,
            group_id=group_id,
            label=label,
            lifetime=timedelta(hours=lifetime_hours),
            max_uses=max_uses,
            now=state.now(),
            server_url=state.settings.effective_public_url,
            signing_key=state.keys.signing,
            source_address=client.source_address,
        )
    except NotFound:
        # A group the user may not manage looks exactly like one that does not exist
        # (server/problems.py answers it as an unknown page).
        db.commit()  # the refusal's audit event
        raise
    except PackageRefused as exc:
        # Answered here, not centrally: the form is shown again with the sentence.
        db.commit()  # the refusal's audit event, if it has one; nothing else was added
        error = t(f"package.refused.{exc.reason}", max_hours=MAX_HOURS, max=packages.MAX_USES)
        status = exc.status
        return _list(request, state, db, t, user, status, error=error, form=form | {"label": label})
    db.commit()
    name = file_name(made.package)
    return render(
        request,
        t,
        "portal_package_made.html",
        status_code=201,
        package=made.package,
        file_name=name,
        file_text=made.file_bytes.decode(),
        # The token is stored as a hash only, so this answer is the one chance to save the
        # file: it is offered as a download link and shown as text to copy.
        download_href="data:application/json;base64," + base64.b64encode(made.file_bytes).decode(),
        fingerprint=_server_fingerprint(state),
    )


@router.get("/{package_id}/revoke", response_class=HTMLResponse)
def confirm_revoke(
    request: Request, state: State, db: DB, t: T, user: PageUser, package_id: uuid.UUID
) -> Response:
    _allowed(user)
    package = packages.get_revocable(db, user, package_id)
    return render(
        request,
        t,
        "portal_package_revoke.html",
        package=package,
        package_state=packages.state_of(db, package, state.now()),
    )


@router.post("/{package_id}/revoke", response_class=HTMLResponse)
def revoke(state: State, db: DB, client: Client, user: PageUser, package_id: uuid.UUID) -> Response:
    _allowed(user)
    try:
        packages.revoke(
            db,
            user=user,
            package_id=package_id,
            now=state.now(),
            source_address=client.source_address,
        )
    except NotFound:
        db.commit()  # the refusal's audit event; server/problems.py answers it
        raise
    db.commit()
    return done("/portal/packages", "package_revoked")
