"""Support over HTTP: the public start page and /s/{code}, the technician's console,
and the API, with their refusals as pages and problems."""

from __future__ import annotations

import re
import threading

from fastapi.testclient import TestClient
from sqlalchemy import event

from fjernhjelp.portal import agreements, grants, terms
from fjernhjelp.portal.models import OrgKind
from fjernhjelp.portal.revocations import Revocation
from fjernhjelp.remote.models import SessionStatus
from tests.helpers import csrf_from, make_org, make_user
from tests.portal.web import Api, browser
from tests.portal.world import World
from tests.server.test_problems import assert_problem
from tests.support.kit import details, events, make_code, row


def _anonymous(client: TestClient) -> TestClient:
    return TestClient(client.app, base_url="http://testserver", follow_redirects=False)


def _enter(page: TestClient, code: str, start: str = "/"):  # type: ignore[no-untyped-def]
    form = page.get(start)
    assert form.status_code == 200
    return page.post("/s", data={"code": code, "csrf_token": csrf_from(form.text)})


def test_anonymous_visitors_get_the_start_page_staff_keep_theirs(client, world: World) -> None:
    with _anonymous(client) as page:
        r = page.get("/")
        assert r.status_code == 200
        html = r.text
        field = re.search(r"<input id=\"support-code\"[^>]*>", html, re.S)
        assert field is not None
        for attribute in (
            'inputmode="numeric"',
            'autocomplete="one-time-code"',
            'aria-describedby="support-code-hint"',
        ):
            assert attribute in field.group(0)
        assert '<label for="support-code">' in html and 'id="support-code-hint"' in html
        assert 'href="/login"' in html and 'href="/lang/en?next=/"' in html
        assert 'name="viewport"' in html
        assert page.get("/lang/en?next=/").status_code == 303
        assert "The code you were given" in page.get("/").text
    with browser(client, world.tech) as tech:
        assert tech.get("/").headers["location"] == "/console"
    with browser(client, world.gp_admin) as admin:
        assert admin.get("/").headers["location"] == "/portal"


def test_the_whole_story_through_the_pages(client, world: World) -> None:
    with browser(client, world.tech) as tech:
        console = tech.get("/console")
        assert 'href="/console/support/new"' in console.text
        choose = tech.get("/console/support/new")
        assert "Legekontoret Fjordbyen" in choose.text
        r = tech.post(
            "/console/support",
            data={"customer_org_id": str(world.gp.id), "csrf_token": csrf_from(choose.text)},
        )
        assert r.status_code == 200, r.text
        shown = re.search(r'data-testid="support-code-shown">(\d{3} \d{3} \d{3})<', r.text)
        assert shown is not None
        code = shown.group(1).replace(" ", "")
        assert f"http://testserver/s/{code}" in r.text or f"/s/{code}</code>" in r.text
        [made] = events(world.db, "support.code_created")
        session_id = details(made)["session"]
        assert f"/console/support/{session_id}" in tech.get("/console").text

        with _anonymous(client) as end_user:
            # The link fills the form in and spends nothing (link previews fetch it too).
            link = end_user.get(f"/s/{code}")
            assert link.status_code == 200 and f'value="{shown.group(1)}"' in link.text
            assert events(world.db, "support.code_attempt") == []
            joined = _enter(end_user, shown.group(1), f"/s/{code}")
            assert joined.status_code == 200, joined.text
            for name in ("Tekniker", "Journalleverandør AS", "Legekontoret Fjordbyen"):
                assert name in joined.text
            assert 'data-testid="support-client-slot"' in joined.text
            # Again: the code is spent; one sentence and the field again.
            again = _enter(end_user, code)
            assert again.status_code == 404
            assert "already used or expired" in again.text or "allerede brukt" in again.text
            assert 'id="support-code"' in again.text and 'aria-invalid="true"' in again.text

        status = tech.get(f"/console/support/{session_id}")
        assert 'data-testid="support-state"' in status.text
        assert "support-cancel" in status.text  # joined: still cancellable
        assert code not in status.text  # shown once only
        r = tech.post(
            f"/console/support/{session_id}/cancel", data={"csrf_token": csrf_from(status.text)}
        )
        assert r.status_code == 303
    ended = row(world.db, session_id)
    assert (ended.status, ended.end_reason) == (SessionStatus.ENDED, "cancelled")


def test_the_public_form_is_csrf_protected(client, world: World) -> None:
    created = make_code(world)
    with _anonymous(client) as end_user:
        end_user.get("/")
        r = end_user.post("/s", data={"code": created.code})
        assert r.status_code == 403
        r = end_user.post(
            "/s", data={"code": created.code}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert r.status_code == 403
    assert events(world.db, "support.code_attempt") == []
    assert row(world.db, created.session.id).status == SessionStatus.WAITING


def test_a_throttled_form_answers_429_with_retry_after(client, world: World) -> None:
    created = make_code(world)
    with _anonymous(client) as guesser:
        for n in range(world.state.settings.support_code_address_failures):
            assert _enter(guesser, f"{n:09d}").status_code == 404
        r = _enter(guesser, created.code)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert 'data-testid="support-error"' in r.text
    attempts = events(world.db, "support.code_attempt")
    assert attempts[-1].outcome == "denied" and attempts[-1].source_address == "testclient"
    assert row(world.db, created.session.id).status == SessionStatus.WAITING


def test_the_api(client, world: World) -> None:
    api = Api(client, world.tech)
    r = api.post("/support-sessions", {"customer_org_id": str(world.gp.id)})
    assert r.status_code == 201, r.text
    made = r.json()
    assert re.fullmatch(r"\d{9}", made["code"]) and made["state"] == "waiting"
    assert made["code_grouped"] == " ".join(re.findall(r"\d{3}", made["code"]))
    assert made["link"].endswith("/s/" + made["code"])
    listed = api.get("/support-sessions").json()
    assert [s["id"] for s in listed] == [made["id"]] and "code" not in listed[0]

    with _anonymous(client) as end_user:
        # Public, no cookie, no CSRF token needed: the code is the credential.
        joined = end_user.post("/api/v1/support/join", json={"code": made["code_grouped"]})
        assert joined.status_code == 200, joined.text
        body = joined.json()
        assert (body["technician"], body["vendor"], body["customer"]) == (
            "Tekniker",
            "Journalleverandør AS",
            "Legekontoret Fjordbyen",
        )
        assert len(body["client_token"]) > 20
        for wrong in (made["code"], "000000000", "abc"):
            assert_problem(
                end_user.post("/api/v1/support/join", json={"code": wrong}),
                404,
                "support.code_invalid",
            )
    assert api.get("/support-sessions").json()[0]["state"] == "joined"
    cancelled = api.post(f"/support-sessions/{made['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert_problem(api.post(f"/support-sessions/{made['id']}/cancel"), 409)


def test_api_refusals_are_problems(client, world: World) -> None:
    made = (
        Api(client, world.tech)
        .post("/support-sessions", {"customer_org_id": str(world.gp.id)})
        .json()
    )
    # Another vendor's technician: not found, as for an id that does not exist.
    rival_org = make_org(world.db, "Konkurrent AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    rival = make_user(world.db, world.state, rival_org, "rival")
    rival_admin = make_user(world.db, world.state, rival_org, "rival-admin", admin=True)
    world.db.commit()
    terms.accept(world.db, world.caller(rival_admin), "giving")
    world.db.commit()
    rival_api = Api(client, rival)
    assert_problem(rival_api.post(f"/support-sessions/{made['id']}/cancel"), 404)
    assert rival_api.get("/support-sessions").json() == []
    assert_problem(
        rival_api.post("/support-sessions", {"customer_org_id": str(world.gp.id)}),
        403,
        "no_support_agreement",
    )
    # A customer whose agreement covers Access only.
    grants.revoke(world.db, world.caller(world.gp_admin), world.grant.id)  # type: ignore[union-attr]
    agreements.revoke(world.db, world.caller(world.gp_admin), world.agreement.id)  # type: ignore[union-attr]
    world.db.commit()
    world.record_agreement(reference="Bare Access", covers="access")
    assert_problem(
        Api(client, world.tech).post("/support-sessions", {"customer_org_id": str(world.gp.id)}),
        403,
        "no_support_agreement",
    )
    # The throttled join: 429 with Retry-After.
    with _anonymous(client) as guesser:
        for n in range(world.state.settings.support_code_address_failures):
            guesser.post("/api/v1/support/join", json={"code": f"{n:09d}"})
        r = guesser.post("/api/v1/support/join", json={"code": "123456789"})
        assert_problem(r, 429, "support.code_throttled")
        assert int(r.headers["retry-after"]) > 0


def test_the_tests_session_writes_after_the_app_has_applied_a_revocation(
    client, world: World
) -> None:
    """The interleaving of a CI failure of the test above, forced: the app's consumer ends
    the waiting code in its write transaction between the test session's first read and
    its first write (an agreement: the terms read, then the insert). On SQLite that
    write fails at once, "database is locked", unless the test's transaction waited for
    the app's reaction before it read (tests/applied.py)."""
    made = make_code(world)
    runtime = client.app.state.access
    applied = client.app.state.applied_revocations
    may_apply, ended = threading.Event(), threading.Event()
    # The consumer goes on once the test's transaction either waits for it (the harness
    # holds it back) or has read: then it writes before the test does.
    applied.on_wait = may_apply.set
    affected = runtime._affected

    def held(revocation: Revocation):  # type: ignore[no-untyped-def]
        may_apply.wait()
        try:
            return affected(revocation)
        finally:
            ended.set()

    runtime._affected = held
    test_thread = threading.get_ident()
    first_read = True

    def after_read(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        nonlocal first_read
        reads = statement.lstrip().upper().startswith("SELECT")
        if first_read and reads and threading.get_ident() == test_thread:
            first_read = False
            may_apply.set()
            ended.wait()

    agreements.revoke(world.db, world.caller(world.gp_admin), world.agreement.id)  # type: ignore[union-attr]
    world.db.commit()
    event.listen(world.state.engine, "after_cursor_execute", after_read)
    try:
        world.record_agreement(reference="Bare Access", covers="access")
    finally:
        event.remove(world.state.engine, "after_cursor_execute", after_read)
    cut = row(world.db, made.session.id)
    assert (cut.status, cut.end_reason) == (SessionStatus.ENDED, "cut:agreement_revoked")
