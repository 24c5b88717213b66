"""The JSON API's login for the command line: bearer tokens after two factors."""

from __future__ import annotations

from tests.helpers import make_org, make_user


def test_api_login_gives_a_bearer_token(client, db, state) -> None:
    org = make_org(db, "Leverandør AS", gives=True)
    tech = make_user(db, state, org, "tekniker")
    db.commit()
    r = client.post("/api/v1/auth/login", json={"username": "tekniker", "password": tech.password})
    assert r.status_code == 200 and r.json()["factors"] == ["totp"]
    pending = r.json()["pending_token"]
    # The pending token is not a session.
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {pending}"}).status_code == 401
    )
    r = client.post("/api/v1/auth/factor", json={"pending_token": pending, "code": tech.code()})
    token = r.json()["token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["username"] == "tekniker" and me["factor_used"] == "totp"
    assert me["organisation"]["name"] == "Leverandør AS"
    assert (
        client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}).status_code
        == 204
    )
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_api_refusals(client, db, state) -> None:
    org = make_org(db)
    make_user(db, state, org, "tekniker")
    db.commit()
    r = client.post("/api/v1/auth/login", json={"username": "tekniker", "password": "wrong-wrong"})
    assert r.status_code == 401 and r.json()["reason"] == "login.bad_credentials"
    r = client.post("/api/v1/auth/factor", json={"pending_token": "forged", "code": "123456"})
    assert r.status_code == 401 and r.json()["reason"] == "login.expired"
    assert client.get("/api/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401


def test_validation_errors_do_not_echo_the_password(client) -> None:
    r = client.post("/api/v1/auth/login", json={"username": "x", "password": "p" * 2000})
    assert r.status_code == 422 and "ppppp" not in r.text
