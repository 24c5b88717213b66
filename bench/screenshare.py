"""The screen shared from the end user's browser (issue 12) against our agent's RFB path,
in the same run, on the same Xvfb scenes (bench/_desktop_scenes.py).

Two products, each end to end through its own real server and relay:

- **agent**: a real agent on the bench's Xvfb, the technician console in headless
  Chromium, noVNC over the encrypted tunnel (bench/_relay_path.py, as bench/desktop.py);
- **browser share**: a Support session whose end user shares the same Xvfb screen from the
  start page in a non-headless Chromium on that display (getDisplayMedia, WebCodecs
  VideoEncoder), the technician console in headless Chromium decoding it with
  VideoDecoder onto its canvas (static/js/share.js, screen.js).

For each scene, at the technician's page: frames drawn per second (noVNC's finished
updates; the share's decoded frames), bytes its WebSocket received per second; and the
time from a change drawn on the X screen (the latency target's square recoloured) to the
changed pixel on the technician's canvas, polled in the page from the moment the change
is made (the same polling for both, so its cost cancels in the ratio). The share's
figures are printed as ratios to the agent's, with the still scene's bytes for both;
and the codec the page's VideoEncoder used (H.264, VP8 or VP9: the first of
screenwire.js's list both ends' WebCodecs take), with the bitrate its backpressure
control ended at, the date and the load average.

The end user's Chromium window sits at the screen's bottom right, on top of part of the
scenes, for both paths alike.

Run: .venv/bin/python bench/screenshare.py [--seconds 6] [--samples 12]
     [--scenes still,moving,photo]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import sync_playwright
from tests.desktop.xvfb import xvfb
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.live.live import LiveSite
from tests.portal.world import build_world

from bench._browser import PAGE_PROBE
from bench._desktop_scenes import Scenes
from bench._relay_path import relay_path
from fjernhjelp.config import Settings
from fjernhjelp.db import migrate
from fjernhjelp.server.state import build_state

WIDTH, HEIGHT = 1920, 1080
CAPTURE_ARGS = [
    "--auto-select-desktop-capture-source=Entire screen",
    "--window-position=1420,700",
    "--window-size=500,380",
]
SHARE_CANVAS = '[data-testid="screen-canvas"]'
# WebCodecs codec strings (static/js/screenwire.js CODECS) as people name them.
CODEC_NAMES = {"avc1": "H.264", "vp8": "VP8", "vp09": "VP9"}
AGENT_CANVAS = "#desktop canvas"
# Polls one pixel of the technician's canvas from the moment it is called until it
# differs from what it was when armed; resolves to the milliseconds that took.
WATCH = """
window.__watch = {
  arm(selector, x, y) {
    const canvas = document.querySelector(selector);
    const context = canvas.getContext("2d", { willReadFrequently: true });
    const sx = Math.floor(x * canvas.width / WIDTH), sy = Math.floor(y * canvas.height / HEIGHT);
    const pixel = () => context.getImageData(sx, sy, 1, 1).data.join();
    const before = pixel();
    this.wait = () => new Promise((resolve) => {
      const start = performance.now();
      const check = () => {
        if (pixel() !== before) resolve(performance.now() - start);
        else if (performance.now() - start > 5000) resolve(null);
        else setTimeout(check, 0);
      };
      check();
    });
  },
};
""".replace("WIDTH", str(WIDTH)).replace("HEIGHT", str(HEIGHT))


@contextlib.contextmanager
def support_site() -> Iterator[LiveSite]:
    """A throwaway site whose technician may make Support sessions (the test world's
    Support agreement with Legekontoret Fjordbyen)."""
    tmp = Path(tempfile.mkdtemp(prefix="fjh-bench-share-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    settings = Settings(
        data_dir=tmp / "data",
        database_url=url,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )
    state = build_state(settings)
    migrate.upgrade(state.engine)
    with state.readers() as db:
        site = LiveSite(build_world(db, state, grant=False), tmp, url)
        site.start_server()
        try:
            yield site
        finally:
            site.stop()
            state.engine.dispose()
            shutil.rmtree(tmp, ignore_errors=True)


def open_share(site: LiveSite, console: Any, end_user: Any) -> None:
    """The Support session, joined by sharing the screen; returns once frames arrive."""
    from tests.e2e.console_live import log_in

    assert site.server is not None
    log_in(console, site)
    console.get_by_test_id("support-new").click()
    console.wait_for_url("**/console/support/new")
    console.get_by_test_id("support-customer-choice").select_option(label="Legekontoret Fjordbyen")
    console.get_by_test_id("support-create").click()
    code = console.get_by_test_id("support-code-shown").inner_text()
    end_user.goto(site.server.url + "/")
    end_user.get_by_label("Koden du har fått").fill(code)
    end_user.get_by_test_id("support-continue").click()
    end_user.get_by_test_id("share-start").click()
    end_user.get_by_test_id("share-words").wait_for(timeout=60_000)
    end_user.get_by_test_id("share-match").click()
    console.wait_for_selector(SHARE_CANVAS + "[data-frames]", timeout=60_000)


def codec_name(codec: str | None) -> str:
    if not codec:
        return "unknown"
    return f"{CODEC_NAMES.get(codec.split('.')[0], codec)} ({codec})"


def share_stats(end_user: Any) -> dict[str, Any]:
    """What the end user's page says it encoded with (share.js window.fjernhjelpShare)."""
    return dict(end_user.evaluate("({ ...(window.fjernhjelpShare?.stats ?? {}) })"))


def frames_of(page: Any, path: str) -> float:
    if path == "agent":
        return float(page.evaluate("window.__bench.updates"))
    return float(page.evaluate(f"Number(document.querySelector('{SHARE_CANVAS}').dataset.frames)"))


def scene(page: Any, path: str, scenes: Scenes, name: str, seconds: float) -> dict[str, float]:
    scenes.prepare(name)
    time.sleep(1.5)
    frames0, bytes0, t0 = (
        frames_of(page, path),
        page.evaluate("window.__bench.bytes"),
        time.monotonic(),
    )
    stop = threading.Event()
    player = threading.Thread(target=scenes.run, args=(name, stop))
    player.start()
    time.sleep(seconds)
    frames1, bytes1, t1 = (
        frames_of(page, path),
        page.evaluate("window.__bench.bytes"),
        time.monotonic(),
    )
    stop.set()
    player.join()
    scenes.finish(name)
    elapsed = t1 - t0
    return {
        "fps": (frames1 - frames0) / elapsed,
        "bytes_per_s": (bytes1 - bytes0) / elapsed,
        "bytes": bytes1 - bytes0,
    }


def change_latency(page: Any, canvas: str, scenes: Scenes, samples: int) -> list[float]:
    """Seconds from a change drawn on the X screen to its pixel on the technician's canvas."""
    scenes.desktop()
    x, y, w, h = Scenes.TARGET
    values = []
    for i in range(samples):
        time.sleep(0.4)
        page.evaluate(
            "([s, x, y]) => window.__watch.arm(s, x, y)", [canvas, x + w // 2, y + h // 2]
        )
        scenes._fill((0xD01010, 0x10B040)[i % 2], x, y, w, h)
        scenes._x.sync()
        ms = page.evaluate("window.__watch.wait()")
        if ms is not None:
            values.append(ms / 1000)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--scenes", default="still,moving,photo")
    args = parser.parse_args()
    names = args.scenes.split(",")
    results: dict[str, dict[str, dict[str, float]]] = {"agent": {}, "share": {}}
    latency: dict[str, list[float]] = {}
    stats: dict[str, Any] = {}
    with xvfb(WIDTH, HEIGHT) as screen, sync_playwright() as pw:
        scenes = Scenes(screen.display, WIDTH, HEIGHT)
        scenes.desktop()
        headless = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        sharer = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=False,
            args=[*CHROMIUM_ARGS, *CAPTURE_ARGS],
            env=screen.env(),
        )
        try:
            with support_site() as site, relay_path(screen.display) as open_agent:
                share_context = headless.new_context(
                    viewport={"width": 1280, "height": 800}, locale="nb-NO"
                )
                share_context.add_init_script(PAGE_PROBE)
                share_context.add_init_script(WATCH)
                share_page = share_context.new_page()
                end_user = sharer.new_context(no_viewport=True, locale="nb-NO").new_page()
                open_share(site, share_page, end_user)
                agent_context = headless.new_context(viewport={"width": 1280, "height": 800})
                agent_context.add_init_script(PAGE_PROBE)
                agent_context.add_init_script(WATCH)
                agent_page = agent_context.new_page()
                open_agent(agent_page)
                pages = {"agent": (agent_page, AGENT_CANVAS), "share": (share_page, SHARE_CANVAS)}
                for name in names:
                    for path, (page, _canvas) in pages.items():  # taking turns, scene by scene
                        results[path][name] = scene(page, path, scenes, name, args.seconds)
                for path, (page, canvas) in pages.items():
                    latency[path] = change_latency(page, canvas, scenes, args.samples)
                stats = share_stats(end_user)
        finally:
            sharer.close()
            headless.close()

    load = os.getloadavg()
    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
    )
    print(
        f"Screen {WIDTH}x{HEIGHT}, {args.seconds:.0f} s per scene, "
        f"{args.samples} changes for latency"
    )
    print(
        f"share codec: {codec_name(stats.get('codec'))}; encoder bitrate at the end "
        f"{stats.get('bitrate', 0) / 1e6:.2f} Mbit/s after {stats.get('bitrateChanges', 0)} "
        f"changes; key frames {stats.get('keyFrames', 0)}"
    )
    print(
        f"{'scene':8} {'agent fps':>10} {'share fps':>10} {'fps ratio':>10} "
        f"{'agent kB/s':>11} {'share kB/s':>11} {'bytes ratio':>11}"
    )
    for name in names:
        a, s = results["agent"][name], results["share"][name]
        fps_ratio = s["fps"] / a["fps"] if a["fps"] else float("nan")
        bytes_ratio = s["bytes_per_s"] / a["bytes_per_s"] if a["bytes_per_s"] else float("nan")
        print(
            f"{name:8} {a['fps']:10.1f} {s['fps']:10.1f} {fps_ratio:10.2f} "
            f"{a['bytes_per_s'] / 1000:11.1f} {s['bytes_per_s'] / 1000:11.1f} {bytes_ratio:11.2f}"
        )
    if "still" in names:
        print(
            f"still scene bytes in {args.seconds:.0f} s: "
            f"agent {results['agent']['still']['bytes']:.0f}, "
            f"share {results['share']['still']['bytes']:.0f}"
        )
    a_med = statistics.median(latency["agent"]) if latency["agent"] else float("nan")
    s_med = statistics.median(latency["share"]) if latency["share"] else float("nan")
    print(
        f"change to canvas, median: agent {a_med * 1000:.0f} ms ({len(latency['agent'])}), "
        f"share {s_med * 1000:.0f} ms ({len(latency['share'])}), ratio {s_med / a_med:.2f}"
    )


if __name__ == "__main__":
    main()
