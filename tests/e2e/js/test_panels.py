"""The terminal (xterm.js), files and chat modules against the agent's services over the
JavaScript tunnel (the agent's own shell and file services when present, see services.py)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.e2e.js.agent import AgentSide
from tests.e2e.js.services import REAL_FILES, chat_service, files_service, shell_service
from tests.e2e.js.sessions import connect_page, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


@pytest.fixture
def panels_page(page, harness):  # type: ignore[no-untyped-def]
    page.goto(harness.url + "/test/panels.html")
    wait_until(page, "window.fjh && window.panels")
    yield page
    # xterm.js writes <style> elements, which the CSP blocks (terminal.js re-applies
    # them as adopted stylesheets); nothing else may be blocked.
    blocked = page.evaluate("window.cspViolations")
    assert all(v == "style-src-elem inline" for v in blocked), blocked


def test_terminal_runs_a_shell_resizes_refuses_a_paste_breakout_and_reports_the_exit(
    panels_page, harness
) -> None:
    page = panels_page
    agent = AgentSide(harness, {"shell": shell_service()}, allowed={"shell"})
    assert connect_page(page, agent) == "open"
    size = page.evaluate("window.panels.terminal()")
    assert size["rows"] > 5 and size["cols"] > 40
    # xterm's theme rules took effect though the CSP blocked its <style> elements: the
    # text is white on black (without terminal.js's adopted sheets it is black on black).
    assert page.evaluate("window.panels.textColour()") == "rgb(255, 255, 255)"
    page.click("#terminal")
    page.keyboard.type("echo fjern$((40+2))hjelp\n")
    page.evaluate("window.panels.waitFor('fjern42hjelp')")

    # GHSA-h62m-39wp-xq3w, performed: a clipboard holding ESC[201~, a command and Enter,
    # pasted while bash waits with bracketed paste on. With xterm.js 6.0.0 alone the marker
    # ends the paste and the command runs (pwn42ed); through terminal.js all of it stays
    # text on the command line (ESC shown by readline, "[201~" and the command after it),
    # and Ctrl-C drops it. One shell for every step: its start can be slow.
    page.keyboard.type("bind 'set enable-bracketed-paste on'; echo rea$((1+1))dy\n")
    page.evaluate("window.panels.waitFor('rea2dy')")
    wait_until(page, "window.shell.term.modes.bracketedPasteMode")
    page.evaluate(
        """(text) => {
          const data = new DataTransfer();
          data.setData("text/plain", text);
          const init = { clipboardData: data, bubbles: true, cancelable: true };
          const textarea = document.querySelector("#terminal textarea");
          textarea.dispatchEvent(new ClipboardEvent("paste", init));
        }""",
        "echo safe\x1b[201~\recho pwn$((6*7))ed\r",
    )
    ran = "t.includes('pwn42ed')"
    held = "t.includes('[201~') && t.includes('pwn$((6*7))ed')"
    wait_until(page, f"(t => {ran} || {held})(window.panels.screen())")
    assert "pwn42ed" not in page.evaluate("window.panels.screen()")
    page.keyboard.press("Control+C")
    page.keyboard.type("echo do$((2+2))ne\n")
    page.evaluate("window.panels.waitFor('do4ne')")
    assert "pwn42ed" not in page.evaluate("window.panels.screen()")

    page.keyboard.type("stty size\n")
    page.evaluate("(t) => window.panels.waitFor(t)", f"{size['rows']} {size['cols']}")

    page.evaluate("document.getElementById('terminal').classList.add('narrow')")
    wait_until(page, f"window.shell.term.cols < {size['cols']}")
    cols = page.evaluate("window.shell.term.cols")
    page.keyboard.type("stty size\n")
    page.evaluate("(t) => window.panels.waitFor(t)", f"{size['rows']} {cols}")

    page.keyboard.type("exit 3\n")
    wait_until(page, "window.shellEnded !== null")
    assert page.evaluate("window.shellEnded") == {"exit": 3}


def test_files_up_and_down_with_progress_and_refusal(panels_page, harness, tmp_path: Path) -> None:
    page = panels_page
    (tmp_path / "rapport.txt").write_text("Blodtrykk 120/80\n")
    agent = AgentSide(harness, {"files": files_service(tmp_path)}, allowed={"files"})
    assert connect_page(page, agent) == "open"

    size = 3 * 1024 * 1024 + 5
    up = page.evaluate("([s, p]) => window.panels.upload(s, p)", [size, "opplasting.bin"])
    data = bytes((i * 7 + (i >> 11)) & 0xFF for i in range(size))
    assert (tmp_path / "opplasting.bin").read_bytes() == data
    assert up["result"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert up["progress"] == [[0, size], [size, size]] and up["steps"] > 40

    down = page.evaluate("(p) => window.panels.download(p)", "rapport.txt")
    assert down["text"] == "Blodtrykk 120/80\n" and down["name"] == "rapport.txt"
    assert down["sha256"] == hashlib.sha256(b"Blodtrykk 120/80\n").hexdigest()
    assert down["last"] == [17, 17]

    missing = page.evaluate("(p) => window.panels.download(p)", "finnes-ikke.txt")
    assert missing["error"] == {
        "name": "TransferError",
        "code": "not_found",
        "message": missing["error"]["message"],
    }
    if REAL_FILES:  # the agent's own confinement: a path outside its roots
        outside = page.evaluate("(p) => window.panels.download(p)", "/etc/passwd")
        assert outside["error"]["code"] == "outside_roots"


def test_chat_both_ways(panels_page, harness) -> None:
    page = panels_page
    received: list[dict[str, object]] = []
    agent = AgentSide(harness, {"chat": chat_service(received)}, allowed={"chat"})
    assert connect_page(page, agent) == "open"
    page.evaluate("window.panels.chat()")
    page.evaluate("window.panels.until(() => window.chatLog.length === 1)")
    sent = page.evaluate("window.chat.send('Ser du skjermen min? 😀')")
    page.evaluate("window.panels.until(() => window.chatLog.length === 2)")
    log = page.evaluate("window.chatLog")
    assert log[0] == {"text": "Hei, jeg er her.", "at": "2026-01-01T10:00:00Z"}
    assert log[1]["text"] == "Mottatt: Ser du skjermen min? 😀"
    assert received == [sent]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(sent["at"]))
