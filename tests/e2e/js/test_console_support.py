"""The Support session page (console_support.html + console_support.js) in Chromium under
the strict CSP, against a Python agent end: it waits while the end user joins, opens the
tunnel once the client is in, reveals the check-word nonce first and shows the words the
client computes; and it offers a terminal only if the end user gave the shell."""

from __future__ import annotations

import pytest

from fjernhjelp.tunnel import sas
from tests.e2e.js.agent import AgentSide
from tests.e2e.js.services import chat_service, files_service, shell_service
from tests.e2e.js.sessions import wait_until
from tests.e2e.js.test_console import EVERYTHING, no_csp_violations, wait_state

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

SUPPORT_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


@pytest.fixture
def view(page):  # type: ignore[no-untyped-def]
    """The page, with every CSP violation it sees recorded (none may be but xterm's)."""
    page.add_init_script(
        "window.violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    yield page
    no_csp_violations(page)


@pytest.mark.parametrize("shell", [False, True], ids=["shell-not-given", "shell-given"])
def test_the_page_waits_shows_the_clients_words_and_the_shell_only_if_given(  # type: ignore[no-untyped-def]
    view, harness, shell: bool
) -> None:
    agent = AgentSide(
        harness,
        services={"chat": chat_service, "files": files_service, "shell": shell_service},
        allowed=set(EVERYTHING),
        consent_required=True,
    )
    harness.console.support = {"state": "waiting", "client_ready": False}
    harness.console.answer = lambda body: (201, agent.issue(body["technician_key"]))
    harness.console.requests.clear()
    view.goto(f"{harness.url}/test/support/{SUPPORT_ID}?lang=en")
    wait_state(view, "support-waiting")
    harness.console.support = {"state": "joined", "client_ready": False}
    wait_state(view, "support-joined")
    assert view.get_by_test_id("support-state").inner_text() == "The user has entered the code"
    assert harness.console.requests == []  # no tunnel asked for before the client is in

    harness.console.support = {"state": "joined", "client_ready": True}
    wait_until(view, "document.getElementById('sas-words').textContent.length > 0")
    [asked] = harness.console.requests
    assert asked["csrf"] == "test-csrf-token" and set(asked["body"]) == {"technician_key"}
    shown = view.get_by_test_id("sas-words").inner_text()
    harness.run(agent.settled())
    assert agent.tunnel is not None
    # The reveal came first on the control stream, and opens HELLO's commitment.
    reveal = agent.received_control[0]
    nonce = sas.nonce_from_reveal(reveal, agent.tunnel.technician_random)
    assert shown == sas.sas_text(agent.tunnel.transcript_hash, nonce)
    digits = sas.sas_digits(agent.tunnel.transcript_hash, nonce)
    assert view.get_by_test_id("sas-digits").inner_text() == f"As digits: {digits}"
    assert view.get_by_test_id("sas-instruction").inner_text() == (
        "Read these words to the person you are helping; if they see other words, end the session."
    )
    assert view.locator("#support-waiting").is_hidden()
    wait_state(view, "waiting-consent")

    given = sorted(EVERYTHING if shell else EVERYTHING - {"terminal"})
    harness.run(agent.consent("given", permissions=given))
    wait_state(view, "connected")
    wait_until(view, "!document.getElementById('chat-panel').hidden")
    assert view.locator("#terminal-panel").is_visible() is shell
    view.click("#end-session")
    wait_state(view, "ended")


def test_a_session_that_can_no_longer_be_opened_here_says_so(view, harness) -> None:  # type: ignore[no-untyped-def]
    harness.console.support = {"state": "running", "client_ready": True}
    harness.console.requests.clear()
    view.goto(f"{harness.url}/test/support/{SUPPORT_ID}?lang=en")
    _, said, _ = wait_state(view, "support-running")
    assert "already been opened" in said
    assert harness.console.requests == [] and view.locator("#sas-panel").is_hidden()


def test_a_browser_share_whose_page_went_without_a_word_is_told_as_such(view, harness) -> None:  # type: ignore[no-untyped-def]
    """A tab closing may not live to seal its GOODBYE (share.js): the technician then has
    only the relay's close of the end user's side, and reads that the page went, not a
    lost connection of their own."""
    agent = AgentSide(harness, services={"chat": chat_service}, allowed={"chat", "view"})
    harness.console.support = {"state": "joined", "client_ready": True, "client_way": "browser"}
    harness.console.answer = lambda body: (201, agent.issue(body["technician_key"]))
    view.goto(f"{harness.url}/test/support/{SUPPORT_ID}?lang=en")
    wait_until(view, "document.getElementById('sas-words').textContent.length > 0")
    harness.run(agent.settled())
    assert agent.tunnel is not None
    wait_state(view, "connected")
    harness.run(agent.tunnel._transport.close())  # the socket goes; no GOODBYE
    _, _, said = wait_state(view, "ended")
    assert said == (
        "The user's browser page was closed or lost its connection. The session has ended."
    )
