"""Key press to changed canvas pixels in noVNC (headless Chromium), through websockify.

The classic open-source stack is x11vnc + websockify + noVNC; here our agent sits behind
the same websockify and the same page, so only the server differs.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from tests.desktop.novnc import NOVNC, _Handler
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def novnc_latency(
    vnc_ports: dict[str, int], target: tuple[int, int], samples: int
) -> dict[str, list[float]]:
    """Milliseconds per key press, for each named VNC port."""
    from playwright.sync_api import sync_playwright

    if not (NOVNC / "core" / "rfb.js").exists():
        raise SystemExit("noVNC is not installed: run `make npm-deps`")
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    proxies = {}
    results: dict[str, list[float]] = {}
    try:
        for name, port in vnc_ports.items():
            ws_port = _free_port()
            proxies[name] = subprocess.Popen(
                [sys.executable, "-m", "websockify", f"127.0.0.1:{ws_port}", f"127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _wait_port(ws_port)
            proxies[name].ws_port = ws_port  # type: ignore[attr-defined]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            for name, proxy in proxies.items():
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                url = (
                    f"http://127.0.0.1:{http.server_address[1]}/viewer.html"
                    f"?ws=ws://127.0.0.1:{proxy.ws_port}"  # type: ignore[attr-defined]
                )
                page.goto(url)
                page.wait_for_function("window.events && window.events.connected", timeout=20_000)
                time.sleep(2)
                values = []
                for _ in range(samples):
                    time.sleep(0.25)
                    ms = page.evaluate(f"window.keyLatency({target[0]}, {target[1]}, 0x61)")
                    if ms is not None:
                        values.append(ms / 1000)
                results[name] = values
                page.close()
            browser.close()
    finally:
        for proxy in proxies.values():
            proxy.terminate()
            proxy.wait(10)
        http.shutdown()
        http.server_close()
    return results
