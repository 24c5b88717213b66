"""The customer portal's whole story in a real browser, once in Norwegian, once in English.

The operator (created on the command line) registers a GP office and a vendor and
appoints their admins; both enrol with their one-time links and accept the terms; the
GP admin records an agreement and gives the vendor attended access to its group; the
vendor admin invites a technician who enrols TOTP; the GP admin revokes; the audit log
shows each step, and the server process publishes the revocation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pyotp
import pytest

from fjernhjelp.i18n import Translator
from tests.conftest import only_on_one_backend
from tests.e2e.conftest import start_server
from tests.helpers import valid_orgnr

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "Fjellvann og blåbær 2026"
LOCALES = {"nb": "nb-NO", "en": "en-GB"}


@dataclass
class Person:
    username: str
    secret: str = ""


def _create_operator(data_dir: Path, database_url: str) -> str:
    env = {
        **os.environ,
        "FJERNHJELP_DATA_DIR": str(data_dir),
        "FJERNHJELP_DATABASE_URL": database_url,
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fjernhjelp",
            "admin",
            "create-operator",
            "--username",
            "driftssjef",
            "--email",
            "drift@example.no",
            "--name",
            "Dina Drift",
            "--org-number",
            valid_orgnr(),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    link = next(line for line in out.splitlines() if "/enroll/" in line).strip()
    return "/enroll/" + link.split("/enroll/", 1)[1]


def _link_path(page) -> str:  # type: ignore[no-untyped-def]
    link = page.get_by_test_id("enrolment-link").inner_text().strip()
    return "/enroll/" + link.split("/enroll/", 1)[1]


def _next_code(secret: str) -> str:
    """The code the phone shows next: each code works once, and enrolment used this one."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def _enrol_and_log_in(page, base: str, link_path: str, who: Person, landing: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + link_path)
    who.secret = page.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password_again]", PASSWORD)
    page.fill("input[name=code]", pyotp.TOTP(who.secret).now())
    page.click("button[type=submit]")
    page.wait_for_url("**/login?notice=enrolled")
    page.fill("input[name=username]", who.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/login/factor**")
    page.fill("input[name=code]", _next_code(who.secret))
    page.click("main button[type=submit]")
    page.wait_for_url(f"**{landing}")


def _rows(page, action: str, actor: str) -> int:  # type: ignore[no-untyped-def]
    """Audit rows with this action done by this account (columns: #, time, action, ...)."""
    rows = page.locator("[data-testid=audit-table] tbody tr")
    return sum(
        1
        for cells in (rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count()))
        if len(cells) > 5 and cells[2] == action and cells[5] == actor
    )


def _submit(page, testid: str) -> None:  # type: ignore[no-untyped-def]
    page.locator(f"[data-testid={testid}] button[type=submit]").click()


@pytest.mark.parametrize("lang", ["nb", "en"])
def test_portal_story(backend, browser, database_url: str, tmp_path: Path, lang: str) -> None:
    # Each language once and each database once: Norwegian on the first, English on
    # the last (one backend: both there).
    only_on_one_backend(backend, ["nb", "en"].index(lang))
    t = Translator(lang)
    data_dir = tmp_path / "var"
    operator_link = _create_operator(data_dir, database_url)
    server = start_server("serve", data_dir, database_url)
    base = server.url
    contexts = []

    def person_page():  # type: ignore[no-untyped-def]
        context = browser.new_context(locale=LOCALES[lang])
        contexts.append(context)
        return context.new_page()

    try:
        # -- the operator -----------------------------------------------------------
        op = person_page()
        _enrol_and_log_in(op, base, operator_link, Person("driftssjef"), "/portal")
        assert op.locator("h1").inner_text() == t("portal.title")
        for audience in ("receiving", "giving"):
            op.goto(base + "/portal/ops/terms")
            op.select_option("select[name=audience]", audience)
            op.fill("input[name=title]", f"Vilkår / terms: {audience}")
            op.fill("textarea[name=body_nb]", "Vi logger alt. Avtale kreves.")
            op.fill("textarea[name=body_en]", "We log everything. An agreement is required.")
            _submit(op, "terms-form")
            op.wait_for_url("**/portal/ops/terms?notice=terms_published")

        gp_orgnr, vendor_orgnr = valid_orgnr(), valid_orgnr()
        links = {}
        for orgnr, name, kind, role, admin in (
            (gp_orgnr, "Legekontoret Fjordbyen", "gp_office", "receives_help", "lege-admin"),
            (vendor_orgnr, "Journalleverandør AS", "vendor", "gives_help", "lev-admin"),
        ):
            op.goto(base + "/portal/ops/organisations")
            op.fill("input[name=orgnr]", "123456789")  # a typo first: refused, kept
            op.fill("input[name=name]", name)
            op.select_option("select[name=kind]", kind)
            op.check(f"input[name={role}]")
            _submit(op, "register-form")
            assert t("organisation.bad_orgnr") in op.get_by_test_id("error").inner_text()
            op.fill("input[name=orgnr]", f"{orgnr[:3]} {orgnr[3:6]} {orgnr[6:]}")
            _submit(op, "register-form")
            op.wait_for_url("**/portal/ops/organisations/*")
            assert name in op.locator("h1").inner_text()
            op.fill("[data-testid=appoint-form] input[name=display_name]", f"Admin {name}")
            op.fill("[data-testid=appoint-form] input[name=username]", admin)
            op.fill("[data-testid=appoint-form] input[name=email]", f"{admin}@example.no")
            _submit(op, "appoint-form")
            links[admin] = _link_path(op)

        # -- the GP office's admin ------------------------------------------------------
        gp = person_page()
        _enrol_and_log_in(gp, base, links["lege-admin"], Person("lege-admin"), "/portal")
        assert gp.get_by_test_id("terms-missing").is_visible()
        gp.goto(base + "/portal/terms")
        gp.get_by_test_id("accept-receiving").click()
        gp.wait_for_url("**/portal/terms?notice=terms_accepted")
        assert gp.get_by_test_id("terms-accepted").is_visible()

        gp.goto(base + "/portal/agreements")
        gp.select_option(
            "select[name=vendor_org_id]", label=f"Journalleverandør AS ({vendor_orgnr})"
        )
        gp.select_option("select[name=kind]", "remote_support")
        gp.check("input[name=covers][value=both]")
        gp.fill("input[name=reference]", "Fjernhjelpsavtale 2026-01")
        last_day = date.today() + timedelta(days=365)
        gp.fill("input[name=valid_until]", last_day.isoformat())
        _submit(gp, "agreement-form")
        gp.wait_for_url("**/portal/agreements/*?notice=agreement_recorded")
        gp.get_by_role("link", name=t("agreement.give_access")).click()
        gp.wait_for_url("**/portal/grants/new?agreement=*")
        gp.check("input[name=permissions][value=view]")
        gp.check("input[name=permissions][value=control]")
        gp.uncheck("input[name=permissions][value=chat]")
        assert gp.locator("input[name=consent][value=required]").is_checked()
        _submit(gp, "grant-form")
        gp.wait_for_url("**/portal/grants/*?notice=grant_created")
        grant_url = gp.url.split("?")[0]
        facts = gp.get_by_test_id("grant-facts").inner_text()
        assert t("permission.control") in facts and t("grant.consent_short") in facts
        gp.goto(base + "/portal/grants")
        overview = gp.get_by_test_id("access-overview").inner_text()
        assert "Journalleverandør AS" in overview and t("permission.view") in overview

        # -- the vendor's admin -----------------------------------------------------------
        vendor = person_page()
        _enrol_and_log_in(vendor, base, links["lev-admin"], Person("lev-admin"), "/portal")
        vendor.goto(base + "/portal/terms")
        vendor.get_by_test_id("accept-giving").click()
        vendor.wait_for_url("**/portal/terms?notice=terms_accepted")
        vendor.goto(base + "/portal/received")
        block = vendor.get_by_test_id(f"customer-{gp_orgnr}")
        assert "Legekontoret Fjordbyen" in block.inner_text()
        assert t("status.active") in block.get_by_test_id("received-status").inner_text()
        vendor.goto(base + "/portal/people")
        vendor.fill("[data-testid=invite-form] input[name=display_name]", "Tore Tekniker")
        vendor.fill("[data-testid=invite-form] input[name=username]", "tore")
        vendor.fill("[data-testid=invite-form] input[name=email]", "tore@example.no")
        assert vendor.locator("[data-testid=invite-form] input[name=technician]").is_checked()
        _submit(vendor, "invite-form")
        tech_link = _link_path(vendor)

        # -- the technician ------------------------------------------------------------------
        tech = person_page()
        _enrol_and_log_in(tech, base, tech_link, Person("tore"), "/console")
        assert "Tore Tekniker" in tech.get_by_test_id("who").inner_text()

        # -- the GP admin revokes ------------------------------------------------------------
        gp.goto(grant_url)
        gp.get_by_test_id("revoke-grant").click()
        gp.wait_for_url("**?notice=grant_revoked")
        assert t("status.revoked") in gp.get_by_test_id("grant-status").inner_text()
        vendor.goto(base + "/portal/received")
        status = vendor.get_by_test_id(f"customer-{gp_orgnr}").get_by_test_id("received-status")
        assert t("status.revoked") in status.inner_text()
        vendor.goto(base + "/portal")
        notice = t(
            "notification.grant_revoked", customer="Legekontoret Fjordbyen", group="Standard"
        )
        assert notice in vendor.get_by_test_id("notices").inner_text()

        # -- the audit log shows each step ---------------------------------------------------
        gp.goto(base + "/portal/audit")
        gp_log = gp.get_by_test_id("audit-table").inner_text()
        for action in (
            "organisation.created",
            "group.created",
            "account.created",
            "account.enrolment",
            "terms.accepted",
            "agreement.recorded",
            "grant.created",
            "grant.revoked",
        ):
            assert action in gp_log, action
        # The vendor's own people are not the GP office's business.
        assert _rows(gp, "account.enrolment", "tore") == 0
        op.goto(base + "/portal/audit")
        op_log = op.get_by_test_id("audit-table").inner_text()
        for action in ("terms.published", "grant.revoked", "auth.login.factor"):
            assert action in op_log, action
        assert _rows(op, "account.enrolment", "tore") == 1
        assert _rows(op, "grant.revoked", "lege-admin") == 1
        gp.screenshot(path=str(tmp_path / f"audit-{lang}.png"), full_page=True)

        # The server process published the revocation once the change had committed.
        log = server.log.read_text()
        assert "revocation published" in log and "grant_revoked" in log
        # One-time links were handed over, never written to the log.
        for link in (operator_link, tech_link, *links.values()):
            assert link not in log
        assert "/enroll/[redacted]" in log
    finally:
        for context in contexts:
            context.close()
        server.stop()
