"""The product's own desktop path for bench/desktop.py: a real server, a real agent on the
bench's Xvfb, and the technician console in the browser.

A throwaway site (bench/_live.py: pre-approved grant, so no consent dialog), an agent
enrolled from an installer package with ``display=`` the bench screen, the technician
logged in with password and TOTP in the browser, then ``/console/connect/{machine_id}``:
the page runs the end-to-end handshake and noVNC over a tunnel stream, and every byte
between the page and the agent passes the server's relay as ciphertext.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psutil
from tests.helpers import PASSWORD

from bench._browser import Opened, Path_, cpu_seconds
from bench._live import live_site

HOSTNAME = "bench-desktop"


@contextmanager
def relay_path(display: str) -> Iterator[Path_]:
    with live_site() as site:
        agent = site.agent(HOSTNAME, display=display)
        agent.start()
        assert agent.proc is not None
        process = psutil.Process(agent.proc.pid)

        assert site.server is not None
        server = psutil.Process(site.server.proc.pid)
        machine_id: list[str] = []  # once logged in (the browser context keeps the cookie)

        def open_(page: Any) -> Opened:
            assert site.server is not None
            if not machine_id:
                tech = site.world.tech
                assert tech.totp_secret
                page.goto(site.server.url + "/login")
                page.fill("input[name=username]", tech.username)
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url("**/login/factor**")
                # A code the site records as used, so the API token below takes the next
                # step (the server accepts each step once).
                page.fill("input[name=code]", site.fresh_code(tech))
                page.click("button[type=submit]")
                page.wait_for_url("**/console")
                # The browser used this step's code; the API token takes the next one.
                machines = site.wait_online(site.api_token(tech), {HOSTNAME})
                machine_id.append(next(m["id"] for m in machines if m["hostname"] == HOSTNAME))
            page.goto(f"{site.server.url}/console/connect/{machine_id[0]}")
            page.wait_for_selector('#state[data-state="connected"]', timeout=60_000)
            # (polled from here: the page's CSP forbids wait_for_function's eval)
            deadline = time.monotonic() + 30
            while not page.evaluate("() => document.querySelector('#desktop canvas')?.width > 100"):
                if time.monotonic() > deadline:
                    raise TimeoutError("the console showed no desktop")
                time.sleep(0.1)
            page.evaluate("window.__bench.hook('/vendor/novnc/core/rfb.js')")
            return Opened(
                "#desktop canvas", lambda: cpu_seconds(process), lambda: cpu_seconds(server)
            )

        yield open_
