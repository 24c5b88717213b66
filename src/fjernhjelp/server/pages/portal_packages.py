"""Installer packages: the list, making one for a group (the file is handed over once,
in the answer to the form), and revoking one after a confirmation page.

Admins of a receiving organisation and technicians of a vendor whose grant lets it make
packages both use these pages; ``access.packages`` decides per group and per package,
the page only offers. A technician sees and revokes only the packages it made."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from fjernhjelp.caller import Caller
from fjernhjelp.control.package import fingerprint
from fjernhjelp.machines import agent_download, packages
from fjernhjelp.machines.models import InstallerPackage
from fjernhjelp.refusals import PackageRefused
from fjernhjelp.server.deps import DB, State, T, require
from fjernhjelp.server.pages.portal_view import done, notice_text
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.portal_caller import PageCaller
from fjernhjelp.support.build import target_name

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
    caller: Caller,
    status_code: int = 200,
    **extra: object,
) -> Response:
    now = caller.now
    rows = [(p, packages.state_of(db, p, now)) for p in packages.visible(db, caller)]
    return render(
        request,
        t,
        "portal_packages.html",
        status_code=status_code,
        packages=rows,
        groups=packages.manageable_groups(db, caller),
        fingerprint=_server_fingerprint(state),
        max_hours=MAX_HOURS,
        max_uses_limit=packages.MAX_USES,
        form=extra.pop("form", {"lifetime_hours": DEFAULT_HOURS, "max_uses": 1}),
        **extra,
    )


def _allowed(caller: Caller) -> None:
    require(caller.user, admin=True, technician=True)


@router.get("", response_class=HTMLResponse)
def packages_page(
    request: Request, state: State, db: DB, t: T, caller: PageCaller, notice: str | None = None
) -> Response:
    _allowed(caller)
    return _list(request, state, db, t, caller, notice=notice_text(t, notice))


@router.post("", response_class=HTMLResponse)
def create(
    request: Request,
    state: State,
    db: DB,
    t: T,
    caller: PageCaller,
    group_id: Annotated[uuid.UUID, Form()],
    lifetime_hours: Annotated[int, Form()] = DEFAULT_HOURS,
    max_uses: Annotated[int, Form()] = 1,
    label: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    _allowed(caller)
    form = {"group_id": group_id, "lifetime_hours": lifetime_hours, "max_uses": max_uses}
    try:
        # A group the caller may not manage is refused as NotFound, marked recorded:
        # get_db keeps its audit event and server/problems.py answers it as an unknown
        # page, exactly as for a group that does not exist.
        made = packages.create(
            db,
            caller,
            group_id=group_id,
            label=label,
            lifetime=timedelta(hours=lifetime_hours),
            max_uses=max_uses,
            server_url=state.settings.effective_public_url,
            signing_key=state.keys.signing,
        )
    except PackageRefused as exc:
        # Answered here, not centrally: the form is shown again with the sentence, so
        # the audit event of a refusal that has one is committed here.
        if exc.recorded:
            db.commit()
        error = t(f"package.refused.{exc.reason}", max_hours=MAX_HOURS, max=packages.MAX_USES)
        status = exc.status
        return _list(
            request, state, db, t, caller, status, error=error, form=form | {"label": label}
        )
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
        # Posted back for the one-file installer (machines/agent_download.py): base64, so
        # the bytes arrive as made (a form field would change the file's line ends).
        package_b64=base64.b64encode(made.file_bytes).decode(),
        executable_name=agent_download.file_name(made.package.group.name),
        fingerprint=_server_fingerprint(state),
    )


def generic_build(state: State) -> Path:
    """The one-file build the Support client is made from (``make support-client``)."""
    from fjernhjelp.remote.support_download import DEFAULT_CLIENT_DIR

    return (state.settings.support_client_dir or DEFAULT_CLIENT_DIR) / target_name()


@router.post("/{package_id}/agent.run")
def download_executable(
    state: State,
    db: DB,
    caller: PageCaller,
    package_id: uuid.UUID,
    package: Annotated[str, Form(max_length=200_000)],
) -> Response:
    """The one-file agent installer for a package just made, whose file the page posts
    back; refusals are recorded by the service and answered by server/problems.py."""
    _allowed(caller)
    try:
        package_file = base64.b64decode(package, validate=True)
    except binascii.Error:
        package_file = b""
    sent = agent_download.executable_download(
        db, caller, package_id, package_file, generic_build(state), state.keys.signing
    )
    db.commit()
    executable = sent.executable.open("rb")
    size = sent.executable_size + len(sent.block)

    def body() -> Iterator[bytes]:
        with executable:
            remaining = sent.executable_size
            while remaining and (chunk := executable.read(min(remaining, 1 << 20))):
                remaining -= len(chunk)
                yield chunk
        yield sent.block

    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{sent.file_name}"',
            "Content-Length": str(size),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/{package_id}/revoke", response_class=HTMLResponse)
def confirm_revoke(
    request: Request, db: DB, t: T, caller: PageCaller, package_id: uuid.UUID
) -> Response:
    _allowed(caller)
    package = packages.get_revocable(db, caller, package_id)
    return render(
        request,
        t,
        "portal_package_revoke.html",
        package=package,
        package_state=packages.state_of(db, package, caller.now),
    )


@router.post("/{package_id}/revoke", response_class=HTMLResponse)
def revoke(db: DB, caller: PageCaller, package_id: uuid.UUID) -> Response:
    _allowed(caller)
    # A refusal comes marked recorded: get_db keeps its audit event.
    packages.revoke(db, caller, package_id)
    db.commit()
    return done("/portal/packages", "package_revoked")
