"""A Support session as the two people live it (issue 11, "Done when"), with nothing
stood in for: a technician logs in to the console in Chromium and makes a Support session;
a second browser, in Norwegian, enters the code on the start page and downloads the
one-time client through the page; that very file (the one-file build, stamped by the
server) runs on an Xvfb display in a home and temporary folder of its own; the end user
compares the check words and consents in its dialog; the technician sees the screen,
types into an application there and chats both ways; the end user ends the session with
the indicator's button. Then the client is gone and has left nothing on disk.

The client must be the real build: ``make test`` builds it when it is missing or older
than its sources and names it in FJERNHJELP_SUPPORT_CLIENT (scripts/test.sh). Without it
this test fails, saying what to do; only FJERNHJELP_SKIP_SUPPORT_STORY=1 skips it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fjernhjelp.agent.display import DisplayTarget
from fjernhjelp.remote.support_download import CLIENT_FILE_NAME, DEFAULT_CLIENT_DIR
from fjernhjelp.support.build import target_name
from fjernhjelp.support.client import EXIT_ENDED
from fjernhjelp.tunnel import sas
from tests.desktop.xvfb import EntryApp, Xvfb
from tests.e2e.console_live import log_in, session_state
from tests.e2e.test_console_chat import _window_shows
from tests.e2e.test_console_csp import RECORD_VIOLATIONS
from tests.e2e.test_console_desktop import _canvas_point
from tests.live.live import LiveSite
from tests.live.test_live_support import Client, _listing
from tests.portal.world import build_world
from tests.streams.desktop.test_novnc import type_norwegian
from tests.x11 import click, screenshot, type_text

pytestmark = [
    pytest.mark.browser,
    pytest.mark.desktop,
    pytest.mark.slow,
    pytest.mark.one_backend(0),
]

SKIP = "FJERNHJELP_SKIP_SUPPORT_STORY"
TYPED = "Blåbærsyltetøy"
QUESTION = "Hei! Jeg ser skjermen din nå. Kan du se meldingen?"
ANSWER = "Ja, den ser jeg. Tusen takk, æøå"
# What the one-file client is made of (as the Makefile's SUPPORT_CLIENT_SOURCES): a build
# older than any of these would test yesterday's client.
CLIENT_PARTS = ("agent", "support", "streams", "tunnel", "control", "i18n")


def _build() -> Path:
    """The generic one-file client the server is to serve; fails (or, asked to, skips)
    with the reason when there is none, or it is older than its sources."""
    given = os.environ.get("FJERNHJELP_SUPPORT_CLIENT")
    path = Path(given) if given else DEFAULT_CLIENT_DIR / target_name()
    problem = None
    if not path.is_file():
        problem = f"there is no one-file Support client at {path}"
    else:
        package = Path(sas.__file__).parents[1]
        built = path.stat().st_mtime
        newer = [
            source
            for part in CLIENT_PARTS
            for source in (package / part).rglob("*")
            if source.suffix in (".py", ".toml", ".txt") and source.stat().st_mtime > built
        ]
        if newer:
            problem = f"the Support client {path} is older than {newer[0]}"
        elif path.name != target_name():
            problem = f"the server serves only {target_name()}, not {path.name}"
    if problem is not None:
        if os.environ.get(SKIP) == "1":
            pytest.skip(f"{problem} ({SKIP}=1)")
        pytest.fail(
            f"{problem}: run `make support-client` (`make test` builds it when it is "
            f"missing or stale), or set {SKIP}=1 to skip this test on purpose",
            pytrace=False,
        )
    return path.resolve()


@pytest.fixture
def site(  # type: ignore[no-untyped-def]
    db, state, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveSite]:
    build = _build()
    # The server hands out this build, stamped (support_client_dir in config.py).
    monkeypatch.setenv("FJERNHJELP_SUPPORT_CLIENT_DIR", str(build.parent))
    live = LiveSite(build_world(db, state, grant=False), tmp_path, database_url)
    live.start_server()
    try:
        yield live
    finally:
        live.stop()


def _console_row(page, url: str) -> str:  # type: ignore[no-untyped-def]
    """The console's list of Support sessions, as the technician sees it."""
    page.goto(url + "/console")
    return page.get_by_test_id("support-row").inner_text()


def _processes_running(program: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(program).encode() in command:
                found.append(int(entry.name))
    return found


def test_technician_and_end_user_run_a_support_session_that_leaves_nothing_behind(  # type: ignore[no-untyped-def]
    browser, site: LiveSite, screen: Xvfb, tmp_path: Path
) -> None:
    assert site.server is not None
    url = site.server.url
    display = DisplayTarget(display=screen.display)
    app = EntryApp(screen, tmp_path)
    client: Client | None = None
    try:
        # The technician makes the Support session in the console.
        technician_context = browser.new_context(locale="nb-NO")
        console = technician_context.new_page()
        console.add_init_script(RECORD_VIOLATIONS)
        log_in(console, site)
        console.get_by_test_id("support-new").click()
        console.wait_for_url("**/console/support/new")
        console.get_by_test_id("support-customer-choice").select_option(
            label="Legekontoret Fjordbyen"
        )
        console.get_by_test_id("support-create").click()
        code = console.get_by_test_id("support-code-shown").inner_text()
        console.wait_for_selector('#state[data-state="support-waiting"]')
        lister = technician_context.new_page()
        assert "Venter på brukeren" in _console_row(lister, url)

        # The end user, in another browser, enters the code and downloads the client.
        end_user = browser.new_context(locale="nb-NO", accept_downloads=True).new_page()
        end_user.goto(url + "/")
        end_user.get_by_label("Koden du har fått").fill(code)
        end_user.get_by_test_id("support-continue").click()
        with end_user.expect_download() as downloading:
            end_user.get_by_test_id("support-client-download").click()
        download = downloading.value
        assert download.suggested_filename == CLIENT_FILE_NAME
        program = tmp_path / "nedlastinger" / CLIENT_FILE_NAME
        program.parent.mkdir()
        download.save_as(program)
        program.chmod(0o700)
        console.wait_for_selector('#state[data-state="support-joined"]', timeout=30_000)

        # It runs on the end user's screen, in a home and temporary folder of its own
        # (their listing taken before it starts), knowing the server from its stamp.
        (tmp_path / "end-user").mkdir()
        # Run as the start page says, without the code: the download carries the session.
        client = Client(site, tmp_path / "end-user", None, "", screen.display, [str(program)])

        # The console opens the tunnel itself once the client is in, and shows the words.
        words = console.get_by_test_id("sas-words")
        words.wait_for(timeout=90_000)
        assert console.get_by_test_id("sas-instruction").inner_text() == (
            "Les disse ordene for den du hjelper; ser de andre ord, avslutt økten."
        )
        said = words.inner_text()
        assert len(said.split()) == 3 and all(w in sas.word_list() for w in said.split())
        assert console.get_by_test_id("sas-digits").inner_text().startswith("Som tall: ")
        dialog = client.shown("consent dialog")
        assert dialog["sas"] == said  # the same three words at both ends
        session_state(console, "waiting-consent")
        screenshot(display, tmp_path / "consent.png")
        click(display, *dialog["buttons"]["allow"])  # the shell left unticked
        session_state(console, "connected")
        assert "Pågår" in _console_row(lister, url)
        site.wait_event("consent.given")
        # The end user did not tick the shell: the console offers no terminal.
        assert console.locator("#terminal-panel").is_hidden()

        # The technician sees the screen and types into the application there.
        console.wait_for_selector("#desktop canvas", timeout=30_000)
        console.wait_for_selector("#desktop textarea.desktop-text-input", state="attached")
        console.mouse.click(*_canvas_point(console, *EntryApp.ENTRY))
        type_norwegian(console, TYPED)
        console.mouse.click(*_canvas_point(console, *EntryApp.BUTTON))
        assert app.wait_result(timeout=30) == TYPED
        console.screenshot(path=str(tmp_path / "console-desktop.png"))

        # Chat, both ways.
        console.fill("#chat-text", QUESTION)
        console.click("#chat-form button[type=submit]")
        area = {k: tuple(v) for k, v in client.shown("session chat")["buttons"].items()}
        assert QUESTION in _window_shows(display, area, QUESTION)
        click(display, *area["chat_entry"])
        type_text(display, ANSWER)
        click(display, *area["chat_send"])
        console.wait_for_selector(f'#chat-log li.theirs:has-text("{ANSWER}")', timeout=30_000)

        # The end user ends the session with the indicator's button.
        indicator = client.shown("session indicator")
        click(display, *indicator["buttons"]["end_session"])
        assert session_state(console, "ended") == "Brukeren ved maskinen avsluttet økten."
        console.screenshot(path=str(tmp_path / "console-ended.png"))
        assert console.evaluate("window.cspViolations") == []

        assert client.wait(60) == EXIT_ENDED, client.log.read_text()[-3000:]
        deadline = time.monotonic() + 30
        while _processes_running(program) and time.monotonic() < deadline:
            time.sleep(0.2)  # the bootloader's child, if it outlives its parent briefly
        assert _processes_running(program) == []
        # Nothing left: the home and temporary folders are as they were before.
        assert _listing(client.home, client.tmpdir) == client.before
        lister.goto(url + "/console")  # an ended session leaves the console's list
        assert lister.get_by_test_id("support-row").count() == 0
    finally:
        if client is not None:
            client.stop()
        app.stop()

    downloaded = json.loads(site.wait_event("support.client_downloaded").details)
    assert downloaded is not None
    chatted = json.loads(site.wait_event("chat.ended").details)
    assert (chatted["to_user"], chatted["from_user"]) == (1, 1)
    over = json.loads(site.wait_event("session.ended").details)
    assert over["support"] is True
