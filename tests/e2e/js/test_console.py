"""The session view (console_session.html + console.js) in Chromium under the strict
CSP: the server's answers, the end user's consent, the panels over the tunnel to a
Python agent, and every way a session is refused or ends, shown in words."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from fjernhjelp.tunnel import CloseCode
from tests.e2e.js.agent import AgentSide
from tests.e2e.js.console_routes import MACHINE_ID
from tests.e2e.js.rfb import COLOURS, RfbSource
from tests.e2e.js.services import chat_service, files_service, shell_service
from tests.e2e.js.sessions import wait_until
from tests.e2e.js.test_tunnel_attacks import flip

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

EVERYTHING = {"view", "control", "chat", "files", "terminal"}
SYSINFO = {
    "type": "sysinfo",
    "hostname": "lege-pc-04",
    "os_name": "Debian GNU/Linux 13 (trixie)",
    "users": ["kari", "ola"],
    "memory_bytes": 8 * 1024**3,
}


def session(harness, agent: AgentSide, **ticket) -> None:  # type: ignore[no-untyped-def]
    harness.console.machines = [
        {
            "id": MACHINE_ID,
            "hostname": "lege-pc-04",
            "customer": {"id": "c1", "name": "Blåbærlia legekontor"},
            "group": {"id": "g1", "name": "Resepsjon"},
            "online": True,
            "last_seen_at": "2026-01-01T10:00:00Z",
            "os": "Debian GNU/Linux 13",
            "users": ["kari"],
        }
    ]
    harness.console.answer = lambda body: (201, agent.issue(body["technician_key"], **ticket))


def open_view(page, harness, lang: str = "nb"):  # type: ignore[no-untyped-def]
    page.goto(f"{harness.url}/test/console/{MACHINE_ID}?lang={lang}")
    return page


def state(page) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    element = page.get_by_test_id("session-state")
    detail = page.get_by_test_id("session-detail").inner_text()
    return element.get_attribute("data-state"), element.inner_text(), detail


def wait_state(page, wanted: str) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    wait_until(page, f"document.getElementById('state').dataset.state === '{wanted}'")
    return state(page)


def no_csp_violations(page) -> None:  # type: ignore[no-untyped-def]
    blocked = page.evaluate("window.violations ?? []")
    assert all(v == "style-src-elem inline" for v in blocked), blocked


@pytest.fixture
def view(page):  # type: ignore[no-untyped-def]
    page.add_init_script(
        "window.violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    yield page
    no_csp_violations(page)


def test_waiting_for_consent_then_the_desktop_keys_clipboard_and_end(view, harness) -> None:
    source = RfbSource(clipboard="Blåbærsyltetøy")
    agent = AgentSide(
        harness,
        {"desktop": source.serve, "chat": chat_service([])},
        allowed={"view", "control", "clipboard", "chat", "desktop"},
        consent_required=True,
    )
    session(harness, agent)
    page = open_view(view, harness)
    assert wait_state(page, "waiting-consent")[1] == (
        "Venter på at brukeren ved maskinen godtar økten …"
    )
    request = harness.console.requests[-1]
    assert request["csrf"] == "test-csrf-token"
    assert request["body"]["machine_id"] == MACHINE_ID
    assert len(base64.b64decode(request["body"]["technician_key"])) == 32
    wait_until(page, "document.getElementById('machine-name').textContent === 'lege-pc-04'")
    assert "Blåbærlia legekontor" in page.inner_text("#machine-customer")
    assert source.client_version == b""  # nothing before the end user has answered

    harness.run(agent.consent("given"))
    _, shown, detail = wait_state(page, "connected")
    assert (shown, detail) == ("Tilkoblet", "Brukeren godtok økten.")
    wait_until(page, "document.querySelector('#desktop canvas')?.width === 64")
    wait_until(page, "document.getElementById('clipboard-remote').value !== ''")
    pixel = page.evaluate(
        "Array.from(document.querySelector('#desktop canvas').getContext('2d')"
        ".getImageData(48, 36, 1, 1).data.slice(0, 3))"
    )
    assert pixel == list(COLOURS[3])
    assert page.input_value("#clipboard-remote") == "Blåbærsyltetøy"
    assert page.is_hidden("#view-only")

    page.click("#ctrl-alt-del")
    page.select_option("#key-combo", "alt-tab")
    page.click("#send-combo")
    page.fill("#clipboard-local", "Hei på deg")
    page.click("#clipboard-send")
    harness.run(_until(lambda: source.cut_text and len(source.keys) >= 10))
    assert source.keys[:6] == [
        (True, 0xFFE3), (True, 0xFFE9), (True, 0xFFFF),
        (False, 0xFFFF), (False, 0xFFE9), (False, 0xFFE3),
    ]  # fmt: skip
    assert source.keys[6:] == [(True, 0xFFE9), (True, 0xFF09), (False, 0xFF09), (False, 0xFFE9)]
    assert source.cut_text == ["Hei på deg"]
    page.uncheck("#scale")  # scaling off and on again, at will
    page.check("#scale")

    page.click("#end-session")
    _, shown, detail = wait_state(page, "ended")
    assert (shown, detail) == ("Økten er avsluttet", "Du avsluttet økten.")
    closed = harness.run(agent.wait_closed())
    assert (closed.code, closed.by) == (CloseCode.ENDED_BY_TECHNICIAN, "peer")
    assert page.is_hidden("#end-session")


def test_control_without_the_clipboard_permission_offers_no_clipboard(view, harness) -> None:
    source = RfbSource(clipboard="Passord123")  # what a wrong agent would send
    agent = AgentSide(harness, {"desktop": source.serve}, allowed={"view", "control", "desktop"})
    session(harness, agent)
    page = open_view(view, harness)
    wait_state(page, "connected")
    wait_until(page, "document.querySelector('#desktop canvas')?.width === 64")
    assert page.is_hidden("#clipboard-panel")
    assert page.is_disabled("#clipboard-send")
    assert page.input_value("#clipboard-remote") == ""  # the page did not take it either
    assert page.is_hidden("#view-only")  # control itself is offered


def test_panels_chat_files_terminal_and_system_information(view, harness, tmp_path: Path) -> None:
    (tmp_path / "logg.txt").write_text("Alt i orden\n")
    said: list[dict[str, object]] = []
    agent = AgentSide(
        harness,
        {
            "chat": chat_service(said),
            "files": files_service(tmp_path),
            "shell": shell_service(),
        },
        allowed={"chat", "files", "terminal", "shell"},
        control_messages=[SYSINFO],
    )
    session(harness, agent)
    page = open_view(view, harness)
    wait_state(page, "connected")
    assert page.is_hidden("#desktop-panel")  # no view permission, no screen
    wait_until(page, "document.querySelector('[data-field=hostname]') !== null")
    facts = page.inner_text("#sysinfo")
    assert "lege-pc-04" in facts and "kari, ola" in facts and "8 GiB" in facts

    wait_until(page, "document.querySelectorAll('#chat-log li').length === 1")
    page.fill("#chat-text", "Jeg ser på skriveren nå")
    page.press("#chat-text", "Enter")
    wait_until(page, "document.querySelectorAll('#chat-log li').length === 3")
    log = page.inner_text("#chat-log")
    assert "Hei, jeg er her." in log and "Mottatt: Jeg ser på skriveren nå" in log
    assert said[0]["text"] == "Jeg ser på skriveren nå"

    page.set_input_files(
        "#upload-file", {"name": "oppskrift.txt", "mimeType": "text/plain", "buffer": b"Rips"}
    )
    page.click("#upload-form button")
    wait_until(page, "document.getElementById('files-status').textContent.includes('lastet opp')")
    assert (tmp_path / "oppskrift.txt").read_bytes() == b"Rips"
    page.fill("#download-path", "logg.txt")
    with page.expect_download() as download:
        page.click("#download-form button")
    assert download.value.suggested_filename == "logg.txt"
    assert Path(download.value.path()).read_text() == "Alt i orden\n"
    page.fill("#download-path", "mangler.txt")
    page.click("#download-form button")
    wait_until(page, "document.getElementById('files-status').textContent.includes('feilet')")

    page.click("#terminal-open")
    wait_until(page, "document.querySelector('#terminal .xterm-rows') !== null")
    page.click("#terminal")
    page.keyboard.type("echo svar-$((6*7))\n")
    wait_until(
        page, "document.querySelector('#terminal .xterm-rows').textContent.includes('svar-42')"
    )
    page.keyboard.type("exit 4\n")
    # While it runs the status names the account; the exit replaces it.
    wait_until(page, "document.getElementById('terminal-status').textContent.includes('kode')")
    assert page.inner_text("#terminal-status") == "Skallet avsluttet med kode 4."


def test_the_servers_refusal_is_shown(view, harness) -> None:
    harness.console.answer = lambda body: (403, {"reason": "no_grant"})
    page = open_view(view, harness)
    _, shown, detail = wait_state(page, "refused")
    assert (shown, detail) == ("Tilkoblingen ble avvist", "Du har ikke tilgang til denne maskinen.")
    assert page.is_hidden("#session-body")
    harness.console.answer = lambda body: (403, {"reason": "weekend_only"})
    page = open_view(view, harness)
    assert wait_state(page, "refused")[2] == "Serveren avviste tilkoblingen (weekend_only)."


def test_the_agents_refusal_is_shown(view, harness) -> None:
    agent = AgentSide(harness, {}, allowed={"view"})
    now = int(time.time())
    session(harness, agent, issued_at=now - 2000, expires_at=now - 1500)
    page = open_view(view, harness)
    assert wait_state(page, "refused")[2] == "Adgangsbilletten er utløpt. Prøv igjen."


def test_an_agent_that_cannot_prove_its_identity_is_stopped(view, harness) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    agent = AgentSide(harness, {}, allowed={"view"})
    agent.identity = Ed25519PrivateKey.generate()
    session(harness, agent)
    page = open_view(view, harness)
    detail = wait_state(page, "failed")[2]
    assert detail == "Maskinens identitet kunne ikke bekreftes. Økten er stoppet."
    assert page.is_hidden("#session-body")


def test_denied_consent_is_shown(view, harness) -> None:
    agent = AgentSide(harness, {}, allowed={"view"}, consent_required=True)
    session(harness, agent)
    page = open_view(view, harness)
    wait_state(page, "waiting-consent")
    harness.run(agent.consent("denied"))
    assert wait_state(page, "refused")[2] == "Brukeren avslo økten."
    harness.run(agent.tunnel.close(CloseCode.CONSENT_DENIED))
    wait_until(page, "document.getElementById('session').dataset.closeCode === '10'")
    assert state(page)[0] == "refused"
    assert state(page)[2] == "Brukeren avslo økten."


def test_an_altered_record_is_reported_in_english(view, harness) -> None:
    agent = AgentSide(harness, {}, allowed={"chat"}, control_messages=[SYSINFO, SYSINFO])
    harness.tampers[agent.session_id] = flip(2)
    session(harness, agent)
    page = open_view(view, harness, lang="en")
    _, shown, detail = wait_state(page, "failed")
    assert shown == "The connection failed"
    assert detail == "The connection was cut because data was altered on the way."
    closed = harness.run(agent.wait_closed())
    assert closed.code == CloseCode.RECORD_ERROR


async def _until(predicate) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    async with asyncio.timeout(20):
        while not predicate():  # noqa: ASYNC110 - the RFB source records into plain lists
            await asyncio.sleep(0.02)


def test_the_machine_list_groups_searches_and_connects(view, harness) -> None:
    harness.console.machines = [
        {
            "id": f"m-{name}",
            "hostname": name,
            "customer": {"id": customer, "name": customer},
            "group": {"id": group, "name": group},
            "online": online,
            "last_seen_at": "2026-01-01T10:00:00Z",
            "os": "Debian GNU/Linux 13",
            "users": users,
        }
        for name, customer, group, online, users in [
            ("resepsjon-1", "Blåbærlia legekontor", "Resepsjon", True, ["kari"]),
            ("lab-2", "Blåbærlia legekontor", "Lab", False, []),
            ("tann-1", "Smil tannklinikk", "Behandlingsrom", True, ["ola"]),
        ]
    ]
    page = view
    page.goto(f"{harness.url}/test/machines")
    wait_until(page, "document.querySelectorAll('#machine-groups li').length === 3")
    assert page.get_by_test_id("console-empty").count() == 0
    customers = page.locator("#machine-groups h3").all_inner_texts()
    assert customers == ["Blåbærlia legekontor", "Smil tannklinikk"]
    lab = page.locator("li[data-machine-id=m-lab-2]").inner_text()
    assert "Ikke pålogget" in lab
    assert "Pålogget" in page.locator("li[data-machine-id=m-tann-1]").inner_text()
    page.fill("#machine-search", "ola")
    wait_until(page, "document.querySelectorAll('#machine-groups li').length === 1")
    page.fill("#machine-search", "finnes ikke")
    wait_until(page, "!document.getElementById('machine-none').hidden")
    assert page.inner_text("#machine-none") == "Ingen maskiner passer søket."
    page.fill("#machine-search", "resepsjon")
    page.click("li[data-machine-id=m-resepsjon-1] a.connect")
    page.wait_for_url("**/console/connect/m-resepsjon-1")
