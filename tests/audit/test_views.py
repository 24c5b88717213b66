"""Who sees which audit events: the operator all, an organisation admin its own."""

from __future__ import annotations

from fastapi.testclient import TestClient

from fjernhjelp.audit.log import Actor, Outcome, record
from tests.helpers import Account, make_org, make_user
from tests.server.test_pages_login import web_login


def _api_token(client: TestClient, account: Account) -> str:
    r = client.post(
        "/api/v1/auth/login", json={"username": account.username, "password": account.password}
    )
    pending = r.json()["pending_token"]
    r = client.post("/api/v1/auth/factor", json={"pending_token": pending, "code": account.code()})
    return r.json()["token"]


def test_admin_sees_only_its_own_organisation(client, db, state) -> None:
    gp = make_org(db, "Legekontoret")
    other = make_org(db, "Tannlegen")
    operator_org = make_org(db, "Drift", receives=False)
    gp_admin = make_user(db, state, gp, "gp-admin", admin=True, technician=False)
    make_user(db, state, other, "other-admin", admin=True, technician=False)
    operator = make_user(db, state, operator_org, "operator", operator=True, technician=False)
    record(
        db,
        "portal.secret_of_other",
        Outcome.SUCCESS,
        actor=Actor.system(),
        customer_org_id=other.id,
    )
    record(db, "portal.ours", Outcome.SUCCESS, actor=Actor.system(), customer_org_id=gp.id)
    db.commit()

    token = _api_token(client, gp_admin)
    seen = client.get("/api/v1/audit/events", headers={"Authorization": f"Bearer {token}"}).json()
    actions = {e["action"] for e in seen["events"]}
    assert "portal.ours" in actions and "portal.secret_of_other" not in actions

    web_login(client, gp_admin)
    page = client.get("/portal/audit")
    assert "portal.ours" in page.text and "portal.secret_of_other" not in page.text
    export = client.get("/portal/audit/export.jsonl").text
    assert "portal.ours" in export and "portal.secret_of_other" not in export

    with TestClient(client.app, base_url="http://testserver", follow_redirects=False) as op:
        web_login(op, operator)
        page = op.get("/portal/audit")
        assert "portal.ours" in page.text and "portal.secret_of_other" in page.text


def test_filters_by_action_and_outcome(client, db, state) -> None:
    org = make_org(db)
    admin = make_user(db, state, org, "admin", admin=True, technician=False)
    db.commit()
    web_login(client, admin)
    page = client.get("/portal/audit", params={"action": "auth.login.factor", "outcome": "success"})
    assert page.status_code == 200
    assert "auth.login.factor" in page.text and "auth.login.password</code>" not in page.text


def test_technician_cannot_read_audit_over_the_api(client, db, state) -> None:
    org = make_org(db)
    tech = make_user(db, state, org, "tekniker")
    db.commit()
    token = _api_token(client, tech)
    r = client.get("/api/v1/audit/events", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
