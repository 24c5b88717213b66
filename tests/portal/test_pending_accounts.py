"""An invited account can do nothing until it has enrolled a second factor."""

from __future__ import annotations

import re

from sqlalchemy import select

from fjernhjelp.auth import totp
from fjernhjelp.auth.models import User, UserStatus
from fjernhjelp.portal import access
from fjernhjelp.portal.access import DenyReason
from tests.helpers import PASSWORD, csrf_from
from tests.portal.web import Api, browser, form_post
from tests.portal.world import World

NEW_PASSWORD = "Fjellvann og blåbær 2026"


def _invite(client, world: World) -> tuple[str, User]:  # type: ignore[no-untyped-def]
    invitation = Api(client, world.vendor_admin).post(
        "/accounts",
        {
            "username": "ny-tekniker",
            "email": "ny@example.no",
            "display_name": "Ny Tekniker",
            "technician": True,
        },
    )
    assert invitation.status_code == 201
    link = invitation.json()["enrolment_link"]
    world.db.rollback()
    user = world.db.execute(select(User).where(User.username == "ny-tekniker")).scalar_one()
    return link.split("8080", 1)[1], user


def test_a_pending_technician_can_do_nothing(client, world: World) -> None:
    path, user = _invite(client, world)
    assert user.status == UserStatus.PENDING and not user.confirmed_factors
    # No password yet: whatever is tried, no login, API or page.
    for password in ("", PASSWORD, NEW_PASSWORD):
        r = client.post(
            "/api/v1/auth/login", json={"username": "ny-tekniker", "password": password}
        )
        assert r.status_code in (401, 403) and "token" not in r.json()
    page = client.get("/login")
    r = client.post(
        "/login",
        data={"username": "ny-tekniker", "password": "x" * 12, "csrf_token": csrf_from(page.text)},
    )
    assert r.status_code == 401
    assert client.get("/api/v1/grants/received").status_code == 401
    # The authorisation decision refuses it too, whatever grants name it.
    decision = access.decide(world.db, user, world.group.id, world.state.now())
    assert decision.reason is DenyReason.NO_SECOND_FACTOR

    # The enrolment link sets the password only together with a confirmed TOTP code.
    enrol = client.get(path)
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', enrol.text).group(1)
    secret = secret.replace(" ", "")
    # Codes as the phone shows them on the server's clock (tests may move it).
    right = totp.code_at_step(secret, totp.step_at(world.state.now().timestamp()))
    wrong = "000000" if right != "000000" else "111111"
    r = client.post(
        path,
        data={
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
            "code": wrong,
            "csrf_token": csrf_from(enrol.text),
        },
    )
    assert r.status_code == 422
    world.db.rollback()
    world.db.expire_all()
    assert world.db.get(User, user.id).status == UserStatus.PENDING
    assert world.db.get(User, user.id).password_hash is None
    r = client.post(
        path,
        data={
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
            "code": right,
            "csrf_token": csrf_from(enrol.text),
        },
    )
    assert r.status_code == 303
    world.db.rollback()
    world.db.expire_all()
    user = world.db.get(User, user.id)
    decision = access.decide(world.db, user, world.group.id, world.state.now())
    assert decision.allowed


def test_a_deactivated_technicians_pages_end_at_once(client, world: World) -> None:
    with browser(client, world.tech) as tech_page:
        assert tech_page.get("/console").status_code == 200
        with browser(client, world.vendor_admin) as admin_page:
            r = form_post(
                admin_page,
                f"/portal/people/{world.tech.user.id}/deactivate",
                {},
                page="/portal/people",
            )
            assert r.status_code == 303
        assert tech_page.get("/console").status_code == 303
