"""What the technician sees, measured inside headless Chromium, the same way for every path.

Paths (each a noVNC page, opened one at a time in the same browser):
- the classic stack: x11vnc + websockify + noVNC (tests/desktop/novnc_page/viewer.html);
- our agent's RFB server behind the same websockify and page;
- the product: the technician console ``/console/connect/{machine_id}`` of a real server,
  the end-to-end encrypted tunnel through its relay to a real agent (bench/_relay_path.py).

In each page a script counts the bytes every WebSocket delivers (what arrived over the
wire: RFB for websockify, tunnel records for the relay) and every framebuffer update
noVNC finished. A key press is a real one (Playwright's keyboard, into noVNC's focused
canvas); the clock starts when the page sees the keydown and stops when the target pixel
on the canvas has changed (checked with ``setTimeout(0)``, so to about 4 ms).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

import psutil
from tests.desktop.novnc import NOVNC, _Handler

from bench._desktop_scenes import Scenes

# Installed before any page script: counts WebSocket bytes; hooks noVNC once it is loaded;
# arms a key press measurement.
PAGE_PROBE = """
(() => {
  const bench = { bytes: 0, updates: 0, result: null };
  window.__bench = bench;
  const Native = window.WebSocket;
  // A plain function returning the native socket: noVNC checks the socket's own
  // prototype for its methods, so a subclass would not do.
  const Counting = function (...args) {
    const socket = new Native(...args);
    socket.addEventListener("message", (event) => {
      const data = event.data;
      bench.bytes += data.byteLength ?? data.size ?? data.length ?? 0;
    });
    return socket;
  };
  Counting.prototype = Native.prototype;
  for (const name of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Counting[name] = Native[name];
  window.WebSocket = Counting;
  bench.hook = async (rfbUrl) => {
    const RFB = (await import(rfbUrl)).default;
    if (RFB.prototype.__benchCounted) return;
    const original = RFB.prototype._framebufferUpdate;
    RFB.prototype._framebufferUpdate = function () {
      const done = original.call(this);
      if (done) bench.updates += 1;
      return done;
    };
    RFB.prototype.__benchCounted = true;
  };
  bench.arm = (selector, x, y) => {
    const canvas = document.querySelector(selector);
    canvas.focus();
    const context = canvas.getContext("2d");
    const pixel = () => context.getImageData(x, y, 1, 1).data.join();
    const before = pixel();
    bench.result = new Promise((resolve) => {
      const pressed = () => {
        window.removeEventListener("keydown", pressed, true);
        const start = performance.now();
        const check = () => {
          if (pixel() !== before) resolve(performance.now() - start);
          else if (performance.now() - start > 3000) resolve(null);
          else setTimeout(check, 0);
        };
        setTimeout(check, 0);
      };
      window.addEventListener("keydown", pressed, true);
    });
  };
})();
"""


@dataclass
class Opened:
    """A page showing the remote desktop, ready to measure."""

    canvas: str  # CSS selector of noVNC's canvas
    cpu: Callable[[], float]  # CPU seconds so far of the process serving the desktop
    proxy_cpu: Callable[[], float]  # ... and of what carries it to the browser


# A path: given a fresh page (PAGE_PROBE installed), open the desktop in it.
Path_ = Callable[[Any], Opened]


def cpu_seconds(proc: psutil.Process) -> float:
    """User and system time of ``proc`` and its children so far."""
    total = proc.cpu_times()
    children = [c.cpu_times() for c in proc.children(recursive=True)]
    return total.user + total.system + sum(c.user + c.system for c in children)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


@contextmanager
def websockify_viewers(
    vnc: dict[str, tuple[int, Callable[[], float]]],
) -> Iterator[dict[str, Path_]]:
    """For each named VNC port: websockify in front of it and the test viewer page."""
    if not (NOVNC / "core" / "rfb.js").exists():
        raise SystemExit("noVNC is not installed: run `make npm-deps`")
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    proxies: list[subprocess.Popen[bytes]] = []
    paths: dict[str, Path_] = {}
    try:
        for name, (port, cpu) in vnc.items():
            ws_port = free_port()
            proxies.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "websockify",
                        f"127.0.0.1:{ws_port}",
                        f"127.0.0.1:{port}",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait_port(ws_port)
            url = (
                f"http://127.0.0.1:{http.server_address[1]}/viewer.html?ws=ws://127.0.0.1:{ws_port}"
            )
            paths[name] = _viewer(url, cpu, psutil.Process(proxies[-1].pid))
        yield paths
    finally:
        for proxy in proxies:
            proxy.terminate()
            proxy.wait(10)
        http.shutdown()
        http.server_close()


def _viewer(url: str, cpu: Callable[[], float], proxy: psutil.Process) -> Path_:
    def open_(page: Any) -> Opened:
        page.goto(url)
        page.wait_for_function("window.events && window.events.connected", timeout=20_000)
        page.evaluate("window.rfb.scaleViewport = true")  # fit the page, as the console does
        page.evaluate("window.__bench.hook('/novnc/core/rfb.js')")
        return Opened("#screen canvas", cpu, lambda: cpu_seconds(proxy))

    return open_


def scene_in_browser(
    page: Any, opened: Opened, scenes: Scenes, name: str, seconds: float
) -> dict[str, float]:
    """Updates noVNC finished, bytes its WebSocket received, CPU seconds, during a scene."""
    scenes.prepare(name)
    time.sleep(1.5)
    updates0, bytes0 = page.evaluate("[window.__bench.updates, window.__bench.bytes]")
    cpu0, proxy0, t0 = opened.cpu(), opened.proxy_cpu(), time.monotonic()
    stop = threading.Event()
    player = threading.Thread(target=scenes.run, args=(name, stop))
    player.start()
    time.sleep(seconds)
    updates1, bytes1 = page.evaluate("[window.__bench.updates, window.__bench.bytes]")
    cpu1, proxy1, t1 = opened.cpu(), opened.proxy_cpu(), time.monotonic()
    stop.set()
    player.join()
    scenes.finish(name)
    return {
        "elapsed": t1 - t0,
        "frames": updates1 - updates0,
        "bytes": bytes1 - bytes0,
        "cpu": cpu1 - cpu0,
        "proxy_cpu": proxy1 - proxy0,
    }


def figures(counts: dict[str, float]) -> dict[str, float]:
    elapsed, frames = counts["elapsed"], counts["frames"]
    return {
        "fps": frames / elapsed,
        "bytes_per_frame": counts["bytes"] / frames if frames else 0.0,
        "mbit_per_s": counts["bytes"] * 8 / elapsed / 1e6,
        "cpu_ms_per_frame": counts["cpu"] * 1000 / frames if frames else 0.0,
        "cpu_percent": counts["cpu"] / elapsed * 100,
        "proxy_cpu_percent": counts["proxy_cpu"] / elapsed * 100,
    }


def key_latency(
    page: Any, opened: Opened, scenes: Scenes, target: tuple[int, int], samples: int
) -> list[float]:
    """Seconds from the page's keydown to the target pixel changing, per press."""
    scenes.focus_target()
    values = []
    for _ in range(samples):
        time.sleep(0.25)
        page.evaluate(
            "([s, x, y]) => window.__bench.arm(s, x, y)", [opened.canvas, target[0], target[1]]
        )
        page.keyboard.press("a")
        ms = page.evaluate("window.__bench.result")
        if ms is not None:
            values.append(ms / 1000)
    return values


def measure_paths(
    browser: Any,
    paths: dict[str, Path_],
    scenes: Scenes,
    scene: str,
    seconds: float,
    samples: int,
    rounds: int,
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """Each path in its own page, one at a time (the scene, then the key presses), taking
    turns for ``rounds`` rounds so that a busy moment of the machine hits all of them."""
    tx, ty, tw, th = Scenes.TARGET
    contexts = {}
    for name in paths:
        contexts[name] = browser.new_context(viewport={"width": 1280, "height": 800})
        contexts[name].add_init_script(PAGE_PROBE)
    totals: dict[str, dict[str, float]] = {name: {} for name in paths}
    latency: dict[str, list[float]] = {name: [] for name in paths}
    per_round = -(-samples // rounds)
    try:
        for _ in range(rounds):
            for name, open_ in paths.items():
                page = contexts[name].new_page()
                try:
                    opened = open_(page)
                    time.sleep(2)
                    counts = scene_in_browser(page, opened, scenes, scene, seconds)
                    for key, value in counts.items():
                        totals[name][key] = totals[name].get(key, 0.0) + value
                    latency[name] += key_latency(
                        page, opened, scenes, (tx + tw // 2, ty + th // 2), per_round
                    )
                finally:
                    page.close()
    finally:
        for context in contexts.values():
            context.close()
    return {name: figures(counts) for name, counts in totals.items()}, latency
