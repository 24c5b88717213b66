"""Opening the terminal breaks no rule of the page's Content Security Policy: xterm.js
adds <style> elements, which the strict policy refused (dozens of violations in the
browser's console, and a terminal drawn without its rules). The page now stamps the
response's nonce on them. Real server, agent, Xvfb and Chromium."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from fjernhjelp.agent.display import DisplayTarget
from tests.desktop.xvfb import Xvfb
from tests.e2e.console_live import log_in, session_state, shown
from tests.live.live import LiveSite
from tests.x11 import click

pytestmark = [
    pytest.mark.browser,
    pytest.mark.desktop,
    pytest.mark.slow,
    pytest.mark.one_backend(0),
]

# Every violation the page sees, recorded before any of its scripts run.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.cspViolations.push(`${e.effectiveDirective}: ${e.blockedURI} ${e.sample}`);
});
// For each <style> a script adds: whether the browser applied it (a refused one has no sheet).
window.addedStyles = [];
new MutationObserver((records) => {
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (node instanceof HTMLStyleElement) window.addedStyles.push(node.sheet !== null);
    }
  }
}).observe(document, { subtree: true, childList: true });
"""


def test_opening_the_terminal_logs_no_csp_violation(
    page, site: LiveSite, screen: Xvfb, tmp_path: Path
) -> None:
    display = DisplayTarget(display=screen.display)
    # The display is an ordinary person's, so the one shell offered (the grant has no
    # "terminal as administrator") is theirs and opens at once. A root display would offer
    # root's login shell, which reads root's start-up files (on CI pyenv's, which can wait
    # a minute on a lock); which account runs the shell is not what this tests.
    nobody = pwd.getpwnam("nobody")
    os.chown(f"/tmp/.X11-unix/X{display.number}", nobody.pw_uid, -1)
    agent = site.agent("lege-pc-1", display=screen.display)
    agent.start()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.add_init_script(RECORD_VIOLATIONS)
    log_in(page, site)
    machine = site.wait_online(site.api_token(site.world.tech), {"lege-pc-1"})[0]
    assert site.server is not None

    page.goto(f"{site.server.url}/console/connect/{machine['id']}")
    session_state(page, "waiting-consent")
    click(display, *shown(agent, "consent dialog")["buttons"]["allow"])
    session_state(page, "connected")
    page.click("#terminal-open")
    # xterm's DOM renderer adds its theme and dimension rules as it opens.
    page.wait_for_function("() => window.addedStyles.length >= 2")
    page.screenshot(path=str(tmp_path / "terminal.png"))
    applied = page.evaluate("window.addedStyles")
    assert applied and all(applied), applied  # xterm's rules were applied, none refused
    assert page.evaluate("window.cspViolations") == []
    assert [m for m in console if "Content Security Policy" in m] == []
    page.click("#end-session")
    session_state(page, "ended")
