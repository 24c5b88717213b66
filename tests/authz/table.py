"""The authorisation matrix, written down once: every route the app serves, for every
role, asked about an object of the caller's own side and of the other side.

Each row is ``"anonymous|technician|vendor admin|customer admin|operator"``; a cell is one
status when both objects get the same answer, or ``own/other``. What the numbers mean:
200/201/204 done, 303 done and sent on (for pages; for the anonymous, sent to /login),
401 not logged in (the API), 403 logged in but not allowed (the role, or a rule that
says why: the problem document names the reason), 404 no such object *for this caller*
(another organisation's objects do not exist for it), 409/422 allowed, but the request
itself is refused (offline machine, form error). tests/authz/test_matrix.py makes every
request for real and fails on any cell that differs; a route without a row fails too.

``python -m tests.authz.table`` prints the table as docs/SECURITY.md shows it;
``python -m tests.authz.table --write docs/SECURITY.md`` puts it there.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROLE_TITLES = ("anonymous", "technician", "vendor admin", "customer admin", "operator")
BEGIN = "<!-- authz-matrix:begin (python -m tests.authz.table --write docs/SECURITY.md) -->"
END = "<!-- authz-matrix:end -->"

# (method, path): (answers, why, where an answer needs a word)
EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "/healthz"): ("200|200|200|200|200", ""),
    ("GET", "/metrics"): (
        "404|404|404|404|404",
        "for addresses in metrics_allow only, whoever is logged in; the matrix's client is in none",
    ),
    ("GET", "/api/v1/openapi.json"): ("200|200|200|200|200", ""),
    ("GET", "/api/v1/docs"): ("200|200|200|200|200", ""),
    ("GET", "/docs/oauth2-redirect"): ("200|200|200|200|200", ""),
    ("GET", "/favicon.ico"): ("200|200|200|200|200", ""),
    ("GET", "/"): (
        "200|303|303|303|303",
        "the public start page (Support code); staff are sent on",
    ),
    ("GET", "/lang/{code}"): ("303|303|303|303|303", "sets the language cookie, goes back"),
    ("POST", "/api/v1/auth/login"): (
        "401|200|200|200|200",
        "own credentials; anonymous: a name nobody has",
    ),
    ("POST", "/api/v1/auth/factor"): (
        "401|200|200|200|200",
        "the second step of a real login; anonymous: a made-up pending token",
    ),
    ("POST", "/api/v1/auth/logout"): ("401|204|204|204|204", "a login of its own, ended"),
    ("GET", "/login"): ("200|303|303|303|303", ""),
    ("POST", "/login"): (
        "401|303|303|303|303",
        "own credentials (303 to the factor step); anonymous: a name nobody has",
    ),
    ("GET", "/login/factor"): ("303|303|303|303|303", "no password step pending: back to /login"),
    ("POST", "/login/factor"): (
        "303|303|303|303|303",
        "the second step of a real login; anonymous: no step pending",
    ),
    ("POST", "/logout"): ("303|303|303|303|303", ""),
    ("GET", "/enroll/{token}"): (
        "200/404|200/404|200/404|200/404|200/404",
        "public: own = a real link, other = a token nobody issued",
    ),
    ("POST", "/enroll/{token}"): (
        "422/404|422/404|422/404|422/404|422/404",
        "passwords that differ: 422 form error; a token nobody issued: 404",
    ),
    ("POST", "/api/v1/agents/enrol"): (
        "201/403|201/403|201/403|201/403|201/403",
        "public: own = a real package’s token, other = one nobody issued",
    ),
    ("POST", "/api/v1/support/join"): (
        "200|200|200|200|200",
        "public: the code is the credential (both sides’ codes work for whoever holds them)",
    ),
    ("GET", "/s/{code}"): ("200|200|200|200|200", "public: fills the form in, spends nothing"),
    ("POST", "/s"): ("200|200|200|200|200", "public: the code is the credential"),
    ("GET", "/s/{session_id}/client"): (
        "503/404|503/404|503/404|503/404|503/404",
        "own: joined from this browser (503: no client build here); other: elsewhere",
    ),
    ("GET", "/api/v1/me"): ("401|200|200|200|200", ""),
    ("POST", "/api/v1/me/notices/{notice_id}/dismiss"): ("401|204/404|204/404|204/404|204/404", ""),
    ("GET", "/account"): ("303|200|200|200|200", ""),
    ("POST", "/account/factors/totp"): ("303|200|200|200|200", ""),
    ("POST", "/account/factors/totp/{factor_id}/confirm"): (
        "303|422/404|422/404|422/404|422/404",
        "own: a wrong code (422 form error); other: someone else’s authenticator",
    ),
    ("POST", "/account/factors/yubikey"): ("303|422|422|422|422", "a made-up key: 422 form error"),
    ("POST", "/account/factors/{factor_id}/remove"): ("303|303/404|303/404|303/404|303/404", ""),
    ("POST", "/account/password"): ("303|303|303|303|303", ""),
    ("GET", "/account/notices"): ("303|303|303|303|303", "no notice waiting: on to the start page"),
    ("POST", "/account/notices/{notification_id}/dismiss"): (
        "303|303/404|303/404|303/404|303/404",
        "",
    ),
    ("GET", "/api/v1/audit/events"): ("401|403|200|200|200", ""),
    ("GET", "/api/v1/audit/checkpoints"): ("401|403|200|200|200", ""),
    ("GET", "/portal/audit"): ("303|403|200|200|200", ""),
    ("GET", "/portal/audit/export.jsonl"): ("303|403|200|200|200", ""),
    ("GET", "/portal/audit/checkpoints.json"): ("303|403|200|200|200", ""),
    ("GET", "/api/v1/organisations"): ("401|403|200|200|200", ""),
    ("POST", "/api/v1/organisations"): ("401|403|403|403|201", ""),
    ("GET", "/api/v1/organisations/{org_id}"): ("401|403|200/404|200/404|200", ""),
    ("GET", "/api/v1/organisations/{org_id}/accounts"): ("401|403|200/404|200/404|200", ""),
    ("PUT", "/api/v1/organisations/{org_id}/policy"): ("401|403|403|403|200", ""),
    ("POST", "/api/v1/organisations/{org_id}/suspend"): (
        "401|403|403|403|422/200",
        "own: the operator’s own organisation is refused (organisation.not_your_own)",
    ),
    ("POST", "/api/v1/organisations/{org_id}/resume"): (
        "401|403|403|403|422/200",
        "own: the operator’s own organisation, not suspended (422)",
    ),
    ("POST", "/api/v1/organisations/{org_id}/admins"): ("401|403|403|403|201", ""),
    ("GET", "/portal/ops/organisations"): ("303|403|403|403|200", ""),
    ("POST", "/portal/ops/organisations"): ("303|403|403|403|303", ""),
    ("GET", "/portal/ops/organisations/{org_id}"): ("303|403|403|403|200", ""),
    ("POST", "/portal/ops/organisations/{org_id}/policy"): ("303|403|403|403|303", ""),
    ("POST", "/portal/ops/organisations/{org_id}/suspend"): (
        "303|403|403|403|422/303",
        "as the API",
    ),
    ("POST", "/portal/ops/organisations/{org_id}/resume"): (
        "303|403|403|403|422/303",
        "as the API",
    ),
    ("POST", "/portal/ops/organisations/{org_id}/admins"): ("303|403|403|403|200", ""),
    ("POST", "/portal/ops/accounts/{user_id}/suspend"): ("303|403|403/404|403/404|303", ""),
    ("POST", "/portal/ops/accounts/{user_id}/unsuspend"): ("303|403|403/404|403/404|303", ""),
    ("GET", "/api/v1/accounts"): ("401|403|200|200|200", ""),
    ("POST", "/api/v1/accounts"): ("401|403|201|201|201", ""),
    ("GET", "/api/v1/accounts/{user_id}"): ("401|403|200/404|200/404|200", ""),
    ("POST", "/api/v1/accounts/{user_id}/enrolment-link"): (
        "401|403|201/404|201/404|201",
        "operator: any account (a re-enrolment is announced to everyone affected)",
    ),
    ("PUT", "/api/v1/accounts/{user_id}/admin"): ("401|403|200/404|200/404|200/404", ""),
    ("PUT", "/api/v1/accounts/{user_id}/outside-eea"): ("401|403|200/404|200/404|200/404", ""),
    ("POST", "/api/v1/accounts/{user_id}/deactivate"): ("401|403|200/404|200/404|200/404", ""),
    ("POST", "/api/v1/accounts/{user_id}/reactivate"): (
        "401|403|200/404|200/404|200",
        "operator: any account (see README: the only operator after a long absence)",
    ),
    ("POST", "/api/v1/accounts/{user_id}/suspend"): ("401|403|403|403|200", ""),
    ("POST", "/api/v1/accounts/{user_id}/unsuspend"): ("401|403|403|403|200", ""),
    ("GET", "/portal/people"): ("303|403|200|200|200", ""),
    ("POST", "/portal/people"): ("303|403|200|200|200", ""),
    ("POST", "/portal/people/{user_id}/admin"): ("303|403|303/404|303/404|303/404", ""),
    ("POST", "/portal/people/{user_id}/outside-eea"): ("303|403|303/404|303/404|303/404", ""),
    ("POST", "/portal/people/{user_id}/deactivate"): ("303|403|303/404|303/404|303/404", ""),
    ("POST", "/portal/people/{user_id}/reactivate"): ("303|403|303/404|303/404|303", ""),
    ("POST", "/portal/people/{user_id}/link"): ("303|403|200/404|200/404|200", ""),
    ("GET", "/api/v1/terms"): ("401|403|200|200|200", ""),
    ("GET", "/api/v1/terms/versions"): ("401|403|200|200|200", ""),
    ("POST", "/api/v1/terms"): ("401|403|403|403|201", ""),
    ("POST", "/api/v1/terms/{audience}/accept"): (
        "401|403|200/403|200/403|403",
        "own = the audience of the caller’s kind; other = the other audience",
    ),
    ("GET", "/portal/terms"): ("303|403|200|200|200", ""),
    ("POST", "/portal/terms/{audience}/accept"): ("303|403|303/403|303/403|403", ""),
    ("GET", "/portal/ops/terms"): ("303|403|403|403|200", ""),
    ("POST", "/portal/ops/terms"): ("303|403|403|403|303", ""),
    ("GET", "/api/v1/groups"): ("401|403|403|200|403", ""),
    ("POST", "/api/v1/groups"): ("401|403|403|201|403", ""),
    ("GET", "/api/v1/groups/{group_id}"): ("401|403|403|200/404|403", ""),
    ("PATCH", "/api/v1/groups/{group_id}"): ("401|403|403|200/404|403", ""),
    ("DELETE", "/api/v1/groups/{group_id}"): ("401|403|403|204/404|403", ""),
    ("GET", "/portal/groups"): ("303|403|403|200|403", ""),
    ("POST", "/portal/groups"): ("303|403|403|303|403", ""),
    ("POST", "/portal/groups/{group_id}/rename"): ("303|403|403|303/404|403", ""),
    ("POST", "/portal/groups/{group_id}/delete"): ("303|403|403|303/404|403", ""),
    ("GET", "/api/v1/vendors"): ("401|403|403|200|403", ""),
    ("GET", "/api/v1/vendors/{vendor_id}/technicians"): ("401|403|403|200/404|403", ""),
    ("GET", "/api/v1/agreements"): ("401|403|403|200|403", ""),
    ("GET", "/api/v1/agreements/received"): ("401|403|200|403|403", ""),
    ("POST", "/api/v1/agreements"): (
        "401|403|403|201|403",
        "the customer may choose any vendor in the directory",
    ),
    ("GET", "/api/v1/agreements/{agreement_id}"): (
        "401|403|200/404|200/404|404",
        "the operator reads agreements through the organisation pages only",
    ),
    ("POST", "/api/v1/agreements/{agreement_id}/revoke"): ("401|403|403|200/404|403", ""),
    ("GET", "/portal/agreements"): ("303|403|200|200|200", ""),
    ("POST", "/portal/agreements"): ("303|403|403|303|403", ""),
    ("GET", "/portal/agreements/{agreement_id}"): ("303|403|200/404|200/404|404", ""),
    ("POST", "/portal/agreements/{agreement_id}/revoke"): ("303|403|403|303/404|403", ""),
    ("GET", "/api/v1/grants"): ("401|403|403|200|403", ""),
    ("GET", "/api/v1/grants/received"): ("401|200|200|403|403", ""),
    ("GET", "/api/v1/access-overview"): ("401|403|403|200|403", ""),
    ("POST", "/api/v1/grants"): ("401|403|403|201/404|403", ""),
    ("GET", "/api/v1/grants/{grant_id}"): ("401|403|200/404|200/404|404", ""),
    ("PUT", "/api/v1/grants/{grant_id}"): ("401|403|403|200/404|403", ""),
    ("POST", "/api/v1/grants/{grant_id}/revoke"): ("401|403|403|200/404|403", ""),
    ("GET", "/portal/grants"): ("303|403|403|200|403", ""),
    ("GET", "/portal/grants/new"): ("303|403|403|200/404|403", ""),
    ("POST", "/portal/grants"): ("303|403|403|303/404|403", ""),
    ("GET", "/portal/grants/{grant_id}"): ("303|403|200/404|200/404|404", ""),
    ("POST", "/portal/grants/{grant_id}"): ("303|403|403|303/404|403", ""),
    ("POST", "/portal/grants/{grant_id}/revoke"): ("303|403|403|303/404|403", ""),
    ("GET", "/portal/received"): ("303|200|200|403|403", ""),
    ("GET", "/api/v1/notifications"): ("401|403|200|200|200", ""),
    ("POST", "/api/v1/notifications/{notification_id}/dismiss"): (
        "401|403|204/404|204/404|204/404",
        "",
    ),
    ("GET", "/portal"): ("303|403|200|200|200", ""),
    ("POST", "/portal/notifications/{notification_id}/dismiss"): (
        "303|403|303/404|303/404|303/404",
        "",
    ),
    ("GET", "/api/v1/machines"): ("401|200|200|200|200", ""),
    ("GET", "/api/v1/machines/{machine_id}"): (
        "401|200/404|404|200/404|404",
        "a technician: machines under a live grant that names it",
    ),
    ("DELETE", "/api/v1/machines/{machine_id}"): (
        "401|404|404|204/404|404",
        "the customer’s admins only",
    ),
    ("GET", "/api/v1/machines/{machine_id}/sessions"): ("401|200/404|404|200/404|404", ""),
    ("POST", "/api/v1/sessions"): (
        "401|409/403|403|403|403",
        "own: the machine is offline (409); other: no grant (403, audited with its reason)",
    ),
    ("GET", "/portal/machines"): ("303|403|200|200|200", ""),
    ("GET", "/portal/machines/{machine_id}"): ("303|200/404|404|200/404|404", ""),
    ("GET", "/portal/machines/{machine_id}/remove"): ("303|403|404|200/404|404", ""),
    ("POST", "/portal/machines/{machine_id}/remove"): ("303|403|404|303/404|404", ""),
    ("GET", "/console"): ("303|200|403|403|403", ""),
    ("GET", "/console/connect/{machine_id}"): (
        "303|200|403|403|403",
        "an empty frame naming only the id; its data comes from the API, which refuses",
    ),
    ("POST", "/api/v1/packages"): (
        "401|201/404|404|201/404|404",
        "a technician only under a grant with “may make installer packages”",
    ),
    ("GET", "/api/v1/packages"): ("401|200|200|200|200", ""),
    ("POST", "/api/v1/packages/{package_id}/revoke"): (
        "401|200/404|404|200/404|404",
        "a technician revokes only packages it made",
    ),
    ("GET", "/portal/packages"): ("303|200|200|200|200", ""),
    ("POST", "/portal/packages"): ("303|201/404|404|201/404|404", ""),
    ("GET", "/portal/packages/{package_id}/revoke"): ("303|200/404|404|200/404|404", ""),
    ("POST", "/portal/packages/{package_id}/revoke"): ("303|303/404|404|303/404|404", ""),
    ("POST", "/portal/packages/{package_id}/agent.run"): (
        "303|503/404|404|503/404|404",
        "own: the package just made, posted back (503: no one-file build here)",
    ),
    ("POST", "/api/v1/support-sessions"): (
        "401|201/403|403|403|403",
        "other: a customer without an agreement covering Support (403, audited)",
    ),
    ("GET", "/api/v1/support-sessions"): ("401|200|200|200|200", ""),
    ("GET", "/api/v1/support-customers"): (
        "401|200|200|200|200",
        "each caller's own list (empty but for a vendor's people)",
    ),
    ("GET", "/api/v1/support-sessions/{support_id}"): (
        "401|200/404|404|404|404",
        "what the console's Support page polls",
    ),
    ("POST", "/api/v1/support-sessions/{support_id}/cancel"): ("401|200/404|404|404|404", ""),
    ("POST", "/api/v1/support-sessions/{support_id}/tunnel"): (
        "401|403/404|404|404|404",
        "own: nobody has joined yet (403 not ready)",
    ),
    ("GET", "/console/support/new"): ("303|200|403|403|403", ""),
    ("POST", "/console/support"): ("303|200/403|403|403|403", "as the API"),
    ("GET", "/console/support/{support_id}"): ("303|200/404|403|403|403", ""),
    ("POST", "/console/support/{support_id}/cancel"): ("303|303/404|403|403|403", ""),
    ("GET", "/portal/support-sessions"): ("303|200|200|200|200", ""),
}

# Routes the matrix does not call over HTTP, and the test that proves each one.
ELSEWHERE: dict[tuple[str, str], str] = {
    ("WS", "/agent/control"): (
        "tests/live/test_live_attacks.py::test_a_forged_agent_cannot_take_a_machines_place"
    ),
    ("WS", "/relay/{session_id}"): (
        "tests/server/test_exhaustion.py::test_a_token_that_fails_is_still_audited_one_by_one"
    ),
}

# Static files, public by design: GET and HEAD only (tests/server/test_csrf_everywhere.py).
STATIC_MOUNTS = frozenset(
    {
        "/static",
        "/vendor/novnc/core",
        "/vendor/novnc/vendor",
        "/vendor/xterm/lib",
        "/vendor/xterm/css",
        "/vendor/xterm-addon-fit/lib",
    }
)


def cells(answers: str) -> list[tuple[str, str]]:
    """``"401|200/404|…"`` as (own, other) per role."""
    out = []
    for cell in answers.split("|"):
        own, _, other = cell.partition("/")
        out.append((own, other or own))
    return out


def render() -> str:
    cells_per_db = len(EXPECTED) * len(ROLE_TITLES) * 2
    lines = [
        f"{len(EXPECTED)} routes × {len(ROLE_TITLES)} roles × 2 objects: {cells_per_db:,}"
        " requests on each database (SQLite and PostgreSQL), plus"
        f" {len(ELSEWHERE)} WebSocket routes proved elsewhere.",
        "",
        "| route | " + " | ".join(ROLE_TITLES) + " | why |",
        "|---|" + "---|" * (len(ROLE_TITLES) + 1),
    ]
    for (method, path), (answers, why) in EXPECTED.items():
        shown = " | ".join(c.replace("/", " / ") for c in answers.split("|"))
        lines.append(f"| `{method} {path}` | {shown} | {why} |")
    for (kind, path), test in ELSEWHERE.items():
        lines.append(
            f"| `{kind} {path}` |" + " |" * len(ROLE_TITLES) + f" in-band credentials: `{test}` |"
        )
    return "\n".join(lines) + "\n"


def with_table(document: str) -> str:
    start, end = document.index(BEGIN) + len(BEGIN), document.index(END)
    return document[:start] + "\n" + render() + document[end:]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write"] and len(argv) == 2:
        path = Path(argv[1])
        path.write_text(with_table(path.read_text()))
        return 0
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
