"""Support with nothing to install (issue 12, "Done when"): the end user shares the screen
from the start page in a real Chromium on an Xvfb display (not headless: the capture is
of that display, granted by flags, no prompt), and the technician's console, a second
browser, shows it. Both ends are the browsers' own code: the page checks the ticket
against the server key with WebCrypto and answers the handshake as the agent; the
console decodes the video stream with WebCodecs. A window of solid colour drawn on the
Xvfb screen appears on the technician's canvas (checked by pixels); chat goes both ways;
"Stop sharing" ends the session on both sides, and the technician is told which way.
On the same server and browsers, three cheaper sessions follow: a browser lacking an API
(taken away by an init script) is told which and offered the one-time client; a ticket
whose signature was changed on its way is refused by the page and audited
(``session.refused``); and closing the end user's tab ends the session, the technician
told it was the page that closed, the server recording ``tab_closed``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.desktop.xvfb import Xvfb, put_image
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.console_live import log_in, session_state
from tests.e2e.test_console_csp import RECORD_VIOLATIONS
from tests.live.live import LiveSite
from tests.portal.world import build_world

pytestmark = [
    pytest.mark.browser,
    pytest.mark.desktop,
    pytest.mark.slow,
    pytest.mark.one_backend(0),
]

# Chromium 156 grants getDisplayMedia without its picker: the whole screen, no prompt.
# Not --use-fake-ui-for-media-stream: with it the capture fails to start
# ("NotReadableError: Could not start video source").
CAPTURE_ARGS = [
    "--auto-select-desktop-capture-source=Entire screen",
    "--window-position=0,0",
    "--window-size=700,760",
]
QUESTION = "Hei! Jeg ser skjermen din nå."
ANSWER = "Flott, æøå"
RED = (230, 20, 30)


@pytest.fixture
def site(db, state, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:  # type: ignore[no-untyped-def]
    live = LiveSite(build_world(db, state, grant=False), tmp_path, database_url)
    live.start_server()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def sharer(browser, screen: Xvfb) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """The end user's Chromium, with a window on the Xvfb display it shares."""
    shown = browser.browser_type.launch(
        executable_path=CHROMIUM,
        headless=False,
        args=[*CHROMIUM_ARGS, *CAPTURE_ARGS],
        env=screen.env(),
    )
    try:
        yield shown
    finally:
        shown.close()


def _pixel(page, x: float, y: float) -> list[int] | None:  # type: ignore[no-untyped-def]
    """The technician's canvas at (x, y) of the shared screen (fractions), R,G,B."""
    return page.evaluate(
        """([x, y]) => {
          const canvas = document.querySelector('[data-testid="screen-canvas"]');
          if (!canvas || !canvas.width) return null;
          const [px, py] = [Math.floor(x * canvas.width), Math.floor(y * canvas.height)];
          const d = canvas.getContext('2d').getImageData(px, py, 1, 1).data;
          return [d[0], d[1], d[2]];
        }""",
        [x, y],
    )


def _wait_pixel(
    page, x: float, y: float, colour: tuple[int, int, int], timeout: float = 60
) -> list[int] | None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = _pixel(page, x, y)
        if seen is not None and all(abs(a - b) <= 40 for a, b in zip(seen, colour, strict=True)):
            return seen
        page.wait_for_timeout(100)  # the next decoded frame; bounded by the deadline above
    return seen


# The browser lacks X25519 in WebCrypto: it knows the name and refuses the algorithm, as
# a browser without it does.
NO_X25519 = """
(() => {
  const generateKey = SubtleCrypto.prototype.generateKey;
  SubtleCrypto.prototype.generateKey = function (algorithm, ...rest) {
    if ((algorithm?.name ?? algorithm) === "X25519") {
      return Promise.reject(new DOMException("Algorithm: Unrecognized name", "NotSupportedError"));
    }
    return generateKey.call(this, algorithm, ...rest);
  };
  SubtleCrypto.prototype.generateKey.original = generateKey;
})();
"""
# What the page's check (share.js missing()) says with one more API taken away each time.
WITHOUT = """async () => {
  const { missing } = await import("/static/js/share.js");
  const out = {};
  const subtle = SubtleCrypto.prototype;
  const generateKey = subtle.generateKey.original;
  subtle.generateKey = generateKey;
  out.nothing = await missing();
  subtle.generateKey = function (algorithm, ...rest) {
    return algorithm?.name === "Ed25519"
      ? Promise.reject(new DOMException("no", "NotSupportedError"))
      : generateKey.call(this, algorithm, ...rest);
  };
  out.ed25519 = await missing();
  const supported = VideoEncoder.isConfigSupported;
  VideoEncoder.isConfigSupported = async (config) => ({ supported: false, config });
  out.codec = await missing();
  VideoEncoder.isConfigSupported = supported;
  delete window.VideoEncoder;
  out.codecs = await missing();
  Object.defineProperty(navigator.mediaDevices, "getDisplayMedia", { value: undefined });
  out.capture = await missing();
  return out;
}"""


def _forged_ticket(route) -> None:  # type: ignore[no-untyped-def]
    """The server's answer with one character of the ticket's signature changed."""
    response = route.fetch()
    body = response.json()
    payload, signature = body["ticket"].split(".")
    changed = "B" if signature[10] == "A" else "A"
    body["ticket"] = f"{payload}.{signature[:10]}{changed}{signature[11:]}"
    route.fulfill(response=response, json=body)


def _new_code(console, url: str) -> str:  # type: ignore[no-untyped-def]
    """A new Support session for the test customer; its code."""
    console.goto(url + "/console/support/new")
    console.get_by_test_id("support-customer-choice").select_option(label="Legekontoret Fjordbyen")
    console.get_by_test_id("support-create").click()
    return str(console.get_by_test_id("support-code-shown").inner_text())


def _join(page, url: str, code: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url + "/")
    page.get_by_label("Koden du har fått").fill(code)
    page.get_by_test_id("support-continue").click()


def test_end_user_shares_the_screen_from_the_browser_end_to_end(  # type: ignore[no-untyped-def]
    browser, sharer, site: LiveSite, screen: Xvfb, tmp_path: Path
) -> None:
    assert site.server is not None
    url = site.server.url
    technician = browser.new_context(locale="nb-NO")
    console = technician.new_page()
    console.add_init_script(RECORD_VIOLATIONS)
    log_in(console, site)
    console.get_by_test_id("support-new").click()
    console.wait_for_url("**/console/support/new")
    console.get_by_test_id("support-customer-choice").select_option(label="Legekontoret Fjordbyen")
    console.get_by_test_id("support-create").click()
    code = console.get_by_test_id("support-code-shown").inner_text()

    end_user = sharer.new_context(locale="nb-NO", no_viewport=True).new_page()
    end_user.add_init_script(RECORD_VIOLATIONS)
    end_user.goto(url + "/")
    end_user.get_by_label("Koden du har fått").fill(code)
    end_user.get_by_test_id("support-continue").click()
    assert "ikke styre maskinen" in end_user.get_by_test_id("share-no-control").inner_text()
    end_user.get_by_test_id("share-start").click()

    # Both ends show the same three words; the end user says they match.
    words = console.get_by_test_id("sas-words")
    words.wait_for(timeout=60_000)
    shown = end_user.get_by_test_id("share-words")
    shown.wait_for(timeout=30_000)
    assert shown.inner_text() == words.inner_text()
    assert len(words.inner_text().split()) == 3
    session_state(console, "waiting-consent")
    end_user.get_by_test_id("share-match").click()
    session_state(console, "connected")
    end_user.get_by_test_id("share-banner").wait_for()
    assert "ikke styre" in console.inner_text("#desktop-status")

    # The screen arrives; a change drawn on it reaches the technician's canvas.
    console.wait_for_selector('[data-testid="screen-canvas"][data-frames]', timeout=60_000)
    red = np.zeros((200, 300, 3), np.uint8)
    red[:, :] = RED
    put_image(screen, red, 900, 400)  # beside the Chromium window, on the root window
    seen = _wait_pixel(console, 1000 / screen.width, 500 / screen.height, RED)
    assert seen is not None and abs(seen[0] - RED[0]) <= 40 and seen[1] <= 60, seen
    console.screenshot(path=str(tmp_path / "console-share.png"))

    # Chat, both ways.
    console.fill("#chat-text", QUESTION)
    console.click("#chat-form button[type=submit]")
    end_user.wait_for_selector(f'#share-chat-log li.theirs:has-text("{QUESTION}")', timeout=30_000)
    end_user.fill("#share-chat-text", ANSWER)
    end_user.get_by_test_id("share-chat-send").click()
    console.wait_for_selector(f'#chat-log li.theirs:has-text("{ANSWER}")', timeout=30_000)

    # A file each way: the technician's arrives as a download in the page; the one the
    # end user picks is offered by name and fetched by the console.
    to_user = tmp_path / "til-brukeren.txt"
    to_user.write_text("Oppskrift på blåbærsyltetøy\n" * 100)
    console.set_input_files("#upload-file", str(to_user))
    console.click("#upload-form button[type=submit]")
    received = end_user.get_by_test_id("share-received")
    received.wait_for(timeout=30_000)
    with end_user.expect_download() as saving:
        received.click()
    assert saving.value.suggested_filename == to_user.name
    assert Path(saving.value.path()).read_bytes() == to_user.read_bytes()
    from_user = tmp_path / "skjermbilde.bin"
    from_user.write_bytes(bytes(range(256)) * 700)  # more than one 64 KiB chunk
    end_user.set_input_files("#share-file-pick", str(from_user))
    console.wait_for_selector(f'#files-status:has-text("{from_user.name}")', timeout=30_000)
    assert console.input_value("#download-path") == from_user.name
    with console.expect_download() as fetching:
        console.click("#download-form button[type=submit]")
    assert Path(fetching.value.path()).read_bytes() == from_user.read_bytes()

    # Pointing: the whole screen is shared, not the page, so the end user sees where in
    # the chat.
    box = console.locator('[data-testid="screen-canvas"]').bounding_box()
    assert box is not None
    console.mouse.click(box["x"] + box["width"] / 4, box["y"] + box["height"] / 2)
    pointed = end_user.locator("#share-chat-log li.pointed")
    pointed.wait_for(timeout=30_000)
    assert "25 % fra venstre" in pointed.inner_text()

    # The end user stops sharing: the session ends on both sides, and the technician is
    # told it was the sharing that stopped.
    end_user.get_by_test_id("share-stop").click()
    assert (
        session_state(console, "ended") == "Brukeren sluttet å dele skjermen. Økten er avsluttet."
    )
    end_user.wait_for_selector('#share-status[data-state="ended_stopped"]', timeout=30_000)
    assert end_user.get_by_test_id("share-banner").is_hidden()
    assert console.evaluate("window.cspViolations") == []
    assert end_user.evaluate("window.cspViolations") == []

    started = json.loads(site.wait_event("support.client_started").details)
    assert started["way"] == "browser"
    chatted = json.loads(site.wait_event("chat.ended").details)
    assert (chatted["to_user"], chatted["from_user"]) == (1, 1)
    moved = [json.loads(e.details)["direction"] for e in site.events("file.moved")]
    assert sorted(moved) == ["from_user", "to_user"]
    over = json.loads(site.wait_event("session.ended").details)
    assert over["support"] is True

    # A browser without one of the APIs: the page says which, plainly, and offers the
    # one-time client instead; it shares nothing. (The technician's headless Chromium.)
    lacking = browser.new_context(locale="nb-NO").new_page()
    lacking.add_init_script(NO_X25519)
    _join(lacking, url, _new_code(console, url))
    unsupported = lacking.get_by_test_id("share-unsupported")
    unsupported.wait_for(timeout=30_000)
    assert "X25519" in unsupported.inner_text()
    offer = lacking.get_by_test_id("share-offer-client")
    assert offer.is_visible()
    # The client's download, or (no build on this server) the sentence saying why not.
    assert offer.inner_text().startswith(
        ("Last ned programmet (Linux)", "Engangsprogrammet er ikke tilgjengelig")
    ), offer.inner_text()
    assert lacking.get_by_test_id("share-start").is_hidden()
    assert lacking.evaluate(WITHOUT) == {
        "nothing": None,
        "ed25519": "ed25519",
        "codec": "codec",
        "codecs": "codecs",
        "capture": "capture",
    }
    # Pointing when the page itself is what is shared (a tab): a marker on the page at
    # the position, where the chat line above is for a screen or a window. The same
    # function the screen stream's "point" messages reach, on this already loaded page.
    lacking.evaluate(
        """async () => (await import("/static/js/share.js"))
          .showPointed({ x: 0.25, y: 0.5 }, "browser")"""
    )
    marker = lacking.locator("#share-pointer")
    assert marker.is_visible()
    box = marker.bounding_box()
    viewport = lacking.viewport_size
    assert box is not None and viewport is not None
    assert abs(box["x"] + box["width"] / 2 - viewport["width"] / 4) <= 2
    assert abs(box["y"] + box["height"] / 2 - viewport["height"] / 2) <= 2
    assert lacking.locator("#share-chat-log li.pointed").count() == 0
    lacking.context.close()

    # A ticket the page's server key did not sign (one character of its signature changed
    # on its way to the technician's console, who only copies it into HELLO): the page
    # refuses it with WebCrypto, nothing is shared, and the server records the refusal.
    console.route("**/api/v1/support-sessions/*/tunnel", _forged_ticket)
    refusing = sharer.new_context(locale="nb-NO", no_viewport=True).new_page()
    _join(refusing, url, _new_code(console, url))
    refusing.get_by_test_id("share-start").click()
    refusing.wait_for_selector('#share-status[data-state="ticket_refused"]', timeout=60_000)
    assert refusing.get_by_test_id("share-check").is_hidden()
    session_state(console, "refused")
    refused = site.wait_event("session.refused")
    assert (refused.outcome, refused.reason) == ("denied", "bad-ticket-signature")
    assert json.loads(refused.details)["support"] is True
    console.unroute("**/api/v1/support-sessions/*/tunnel")
    refusing.context.close()

    # The end user closes the tab mid-session: the session ends, and the technician is
    # told it was the page that closed, not the sharing that stopped.
    closing = sharer.new_context(locale="nb-NO", no_viewport=True).new_page()
    _join(closing, url, _new_code(console, url))
    closing.get_by_test_id("share-start").click()
    closing.get_by_test_id("share-words").wait_for(timeout=60_000)
    closing.get_by_test_id("share-match").click()
    session_state(console, "connected")
    ended_before = len(site.events("session.ended"))
    closing.close(run_before_unload=True)  # as a person closing it: pagehide runs
    # The page's GOODBYE ("tab-closed") when it got out before the page went, else the
    # relay's word that the end user's side closed: either way not "stopped sharing".
    told = session_state(console, "ended")
    assert told in (
        "Brukeren lukket nettleserfanen. Økten er avsluttet.",
        "Brukerens nettleserside ble lukket eller mistet forbindelsen. Økten er avsluttet.",
    )
    gone = site.wait_event("session.ended_at_agent", reason="tab_closed")
    assert json.loads(gone.details)["support"] is True
    deadline = time.monotonic() + 30
    while len(site.events("session.ended")) == ended_before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(site.events("session.ended")) > ended_before
