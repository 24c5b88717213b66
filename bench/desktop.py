"""The desktop stream: our agent against x11vnc on the same screen, in the same run.

On a 1920x1080 Xvfb, scripted content (a still screen, scrolling text, a window moving
across the desktop, a full-screen photo replaced twice a second) is read by one
measuring RFB client from our agent (``fjernhjelp agent desktop-serve``) and from
x11vnc, asking both for the same encodings (noVNC's list: CopyRect, Tight with JPEG
quality 6, ZRLE, Raw, cursor, desktop size). The client keeps one update request
outstanding, as noVNC does. For each scene and server it reports updates per second,
bytes per update, bandwidth, and the server process's CPU time per update and per
second (psutil); then the time from a key event sent to the first update that carries
the changed pixels, for both. Ours is printed as a ratio to x11vnc.

Then the technician's view, in headless Chromium (noVNC), each path in its own page and
measured the same way (bench/_browser.py): the classic stack (x11vnc + websockify +
noVNC), our agent's RFB server behind the same websockify and page, and, unless
``--no-through-relay``, the product itself: a real server and agent, the technician
console page, the end-to-end encrypted tunnel through the relay (bench/_relay_path.py).
For each: one scene (default: the moving window) as updates per second and bytes per
update at the browser, and a real key press in the page until the target pixel has
changed on the canvas; all as ratios to the classic stack.

Also: capture time with mss's XShmGetImage against XGetImage, and our scroll detection
on and off (CopyRect removed from the encodings) for the scrolling scene.

Run: .venv/bin/python bench/desktop.py [--seconds 8] [--samples 30] [--no-through-relay]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
from tests.desktop.xvfb import xvfb
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

from bench._browser import Path_, cpu_seconds, measure_paths, websockify_viewers
from bench._desktop_scenes import Scenes
from bench._relay_path import relay_path
from bench._rfb_probe import ENCODINGS, Probe
from fjernhjelp.streams.desktop import damage
from fjernhjelp.streams.desktop.capture import Screen
from fjernhjelp.streams.desktop.encoders.base import Rect, Settings
from fjernhjelp.streams.desktop.encoders.tight import TightEncoder
from fjernhjelp.streams.desktop.pixels import PixelFormat

WIDTH, HEIGHT = 1920, 1080
SCENES = ("still", "scroll", "moving", "photo")
NOVNC_FORMAT = PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


async def measure_scene(
    scenes: Scenes,
    name: str,
    port: int,
    proc: psutil.Process,
    seconds: float,
    encodings: list[int],
) -> dict[str, float]:
    await asyncio.to_thread(scenes.prepare, name)
    probe = await Probe.connect(port, encodings)
    reader = asyncio.create_task(probe.run())
    await probe.next_update()
    await asyncio.sleep(1.5)  # both servers settle after the first full frame
    first, cpu0, t0 = len(probe.updates), cpu_seconds(proc), time.monotonic()
    stop = threading.Event()
    player = threading.Thread(target=scenes.run, args=(name, stop))
    player.start()
    await asyncio.sleep(seconds)
    stop.set()
    t1, cpu1 = time.monotonic(), cpu_seconds(proc)
    updates = [u for u in probe.updates[first:] if u.received <= t1]
    await asyncio.to_thread(player.join)
    await asyncio.to_thread(scenes.finish, name)
    reader.cancel()
    await probe.close()
    elapsed, frames = t1 - t0, len(updates)
    total = sum(u.size for u in updates)
    cpu = cpu1 - cpu0
    return {
        "fps": frames / elapsed,
        "bytes_per_frame": total / frames if frames else 0.0,
        "mbit_per_s": total * 8 / elapsed / 1e6,
        "cpu_ms_per_frame": cpu * 1000 / frames if frames else 0.0,
        "cpu_percent": cpu / elapsed * 100,
    }


async def measure_latency(scenes: Scenes, port: int, samples: int) -> list[float]:
    await asyncio.to_thread(scenes.desktop)
    probe = await Probe.connect(port)
    reader = asyncio.create_task(probe.run())
    await probe.next_update()
    await asyncio.sleep(1.5)
    tx, ty, tw, th = Scenes.TARGET
    results = []
    for _ in range(samples):
        await asyncio.sleep(0.25)
        seen = len(probe.updates)
        start = time.monotonic()
        probe.key(ord("a"))
        deadline = start + 3
        arrived = None
        while arrived is None and time.monotonic() < deadline:
            await probe.next_update()
            for update in probe.updates[seen:]:
                if any(
                    x < tx + tw and tx < x + w and y < ty + th and ty < y + h
                    for x, y, w, h, enc in update.rects
                    if enc >= 0
                ):
                    arrived = update.received
                    break
        if arrived is not None:
            results.append(arrived - start)
    reader.cancel()
    await probe.close()
    return results


def pipeline_costs(display: str, scenes: Scenes) -> dict[str, float]:
    """Our agent's per-frame steps, in this process (median milliseconds)."""
    out: dict[str, float] = {}
    for backend in ("xshmgetimage", "xgetimage"):
        screen = Screen(display, backend=backend)
        times = []
        for _ in range(25):
            t = time.perf_counter()
            screen.grab()
            times.append(time.perf_counter() - t)
        out[f"capture {backend}"] = statistics.median(times) * 1000
        screen.close()
    screen = Screen(display)
    scenes.desktop()
    text = screen.grab().copy()
    scenes._step_photo(0)
    scenes._x.sync()
    photo_frame = screen.grab().copy()
    screen.close()
    times = []
    for _ in range(25):
        t = time.perf_counter()
        damage.dirty_tiles(text, photo_frame)
        times.append(time.perf_counter() - t)
    out["tile diff 1080p"] = statistics.median(times) * 1000
    full = Rect(0, 0, WIDTH, HEIGHT)
    for label, frame in (("text", text), ("photo", photo_frame)):
        times, sizes = [], []
        for _ in range(5):
            encoder = TightEncoder()
            t = time.perf_counter()
            rects = encoder.encode(frame, full, Settings(NOVNC_FORMAT, quality=6, compression=2))
            times.append(time.perf_counter() - t)
            sizes.append(sum(len(r.to_bytes()) for r in rects))
        out[f"Tight encode full {label} frame"] = statistics.median(times) * 1000
        out[f"Tight size full {label} frame (KB)"] = statistics.median(sizes) / 1000
    return out


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs else "n/a"


def start_servers(
    display: str, ours_port: int, theirs_port: int
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """Our agent (its command-line VNC port) and x11vnc, both on ``display``."""
    ours = subprocess.Popen(
        [sys.executable, "-m", "fjernhjelp", "agent", "desktop-serve",
         "--listen", f"127.0.0.1:{ours_port}", "--display", display],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    theirs = subprocess.Popen(
        ["x11vnc", "-display", display, "-rfbport", str(theirs_port), "-localhost",
         "-nopw", "-forever", "-shared", "-quiet", "-ncache", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return ours, theirs


async def run(args: argparse.Namespace) -> None:
    if shutil.which("x11vnc") is None:
        raise SystemExit("x11vnc is not installed (make system-deps installs it)")
    with xvfb(WIDTH, HEIGHT) as server:
        scenes = Scenes(server.display, WIDTH, HEIGHT)
        scenes.desktop()
        print(f"Xvfb {server.display} {WIDTH}x{HEIGHT}x24; {args.seconds:.0f} s per scene")
        for label, value in pipeline_costs(server.display, scenes).items():
            print(f"  {label:36s} {value:8.1f}")
        ours_port, theirs_port = free_port(), free_port()
        ours, theirs = start_servers(server.display, ours_port, theirs_port)
        try:
            wait_port(ours_port, ours)
            wait_port(theirs_port, theirs)
            servers = {
                "ours": (ours_port, psutil.Process(ours.pid), ENCODINGS),
                "x11vnc": (theirs_port, psutil.Process(theirs.pid), ENCODINGS),
            }
            results: dict[tuple[str, str], dict[str, float]] = {}
            for scene in SCENES:
                for who, (port, proc, encodings) in servers.items():
                    results[scene, who] = await measure_scene(
                        scenes, scene, port, proc, args.seconds, encodings
                    )
            no_copy = [e for e in ENCODINGS if e != 1]
            results["scroll", "ours without CopyRect"] = await measure_scene(
                scenes, "scroll", ours_port, servers["ours"][1], args.seconds, no_copy
            )
            scenes.start_target()
            latency = {
                who: await measure_latency(scenes, port, args.samples)
                for who, (port, _proc, _enc) in servers.items()
            }
            in_browser = await asyncio.to_thread(
                browser_phase,
                server.display,
                scenes,
                {
                    "x11vnc": (theirs_port, psutil.Process(theirs.pid)),
                    "ours": (ours_port, psutil.Process(ours.pid)),
                },
                args,
            )
        finally:
            for proc in (ours, theirs):
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    report(results, latency, args.samples)
    flows, in_page = in_browser
    report_browser(flows, args.browser_scene, args.seconds)
    report_latency(
        "key press in the page to the changed pixel on noVNC's canvas (Chromium)",
        in_page,
        args.samples,
        PATHS,
    )


# How each path is shown, in the order measured.
PATHS = {
    "x11vnc": "x11vnc + websockify",
    "ours": "ours + websockify",
    "ours via relay": "ours, console via relay",
}


def browser_phase(
    display: str,
    scenes: Scenes,
    vnc: dict[str, tuple[int, psutil.Process]],
    args: argparse.Namespace,
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    from playwright.sync_api import sync_playwright

    with contextlib.ExitStack() as stack:
        cpu = {name: (port, _cpu_of(proc)) for name, (port, proc) in vnc.items()}
        paths: dict[str, Path_] = dict(stack.enter_context(websockify_viewers(cpu)))
        if args.through_relay:
            paths["ours via relay"] = stack.enter_context(relay_path(display))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                return measure_paths(
                    browser,
                    paths,
                    scenes,
                    args.browser_scene,
                    args.seconds,
                    args.samples,
                    args.browser_rounds,
                )
            finally:
                browser.close()


def _cpu_of(proc: psutil.Process) -> Callable[[], float]:
    return lambda: cpu_seconds(proc)


def report_browser(flows: dict[str, dict[str, float]], scene: str, seconds: float) -> None:
    print()
    print(
        f"scene {scene!r} ({seconds:.0f} s a round) as noVNC in Chromium got it: updates it "
        "finished, bytes its WebSocket received; CPU of the process serving the desktop (VNC "
        "server or agent) and of the one carrying it (websockify or the server's relay):"
    )
    print(
        f"{'path':26s} {'upd/s':>7s} {'KB/upd':>8s} {'Mbit/s':>8s} {'CPU ms/upd':>10s} "
        f"{'CPU %':>6s} {'carrier CPU %':>13s}"
    )
    for who, r in flows.items():
        print(
            f"{PATHS[who]:26s} {r['fps']:7.1f} {r['bytes_per_frame'] / 1000:8.1f} "
            f"{r['mbit_per_s']:8.2f} {r['cpu_ms_per_frame']:10.1f} {r['cpu_percent']:6.1f} "
            f"{r['proxy_cpu_percent']:13.1f}"
        )
    base = flows.get("x11vnc")
    if base is None:
        return
    print(f"as a ratio to {PATHS['x11vnc']}:")
    print(f"{'path':26s} {'upd/s':>7s} {'B/upd':>7s} {'Mbit/s':>7s} {'CPU/upd':>8s} {'CPU %':>7s}")
    for who, r in flows.items():
        if who == "x11vnc":
            continue
        print(
            f"{PATHS[who]:26s} {ratio(r['fps'], base['fps']):>7s} "
            f"{ratio(r['bytes_per_frame'], base['bytes_per_frame']):>7s} "
            f"{ratio(r['mbit_per_s'], base['mbit_per_s']):>7s} "
            f"{ratio(r['cpu_ms_per_frame'], base['cpu_ms_per_frame']):>8s} "
            f"{ratio(r['cpu_percent'], base['cpu_percent']):>7s}"
        )


def report(
    results: dict[tuple[str, str], dict[str, float]], latency: dict[str, list[float]], samples: int
) -> None:
    print()
    print(
        f"{'scene':8s} {'server':22s} {'upd/s':>7s} {'KB/upd':>8s} {'Mbit/s':>8s} "
        f"{'CPU ms/upd':>10s} {'CPU %':>6s}"
    )
    for (scene, who), r in results.items():
        print(
            f"{scene:8s} {who:22s} {r['fps']:7.1f} {r['bytes_per_frame'] / 1000:8.1f} "
            f"{r['mbit_per_s']:8.2f} {r['cpu_ms_per_frame']:10.1f} {r['cpu_percent']:6.1f}"
        )
    print()
    print("ours as a ratio to x11vnc (same scene, same client, same run):")
    print(f"{'scene':8s} {'upd/s':>7s} {'B/upd':>7s} {'Mbit/s':>7s} {'CPU/upd':>8s} {'CPU %':>7s}")
    for scene in SCENES:
        a, b = results[scene, "ours"], results[scene, "x11vnc"]
        print(
            f"{scene:8s} {ratio(a['fps'], b['fps']):>7s} "
            f"{ratio(a['bytes_per_frame'], b['bytes_per_frame']):>7s} "
            f"{ratio(a['mbit_per_s'], b['mbit_per_s']):>7s} "
            f"{ratio(a['cpu_ms_per_frame'], b['cpu_ms_per_frame']):>8s} "
            f"{ratio(a['cpu_percent'], b['cpu_percent']):>7s}"
        )
    report_latency(
        "key press to the update carrying the change (measuring client)", latency, samples
    )


def report_latency(
    title: str, latency: dict[str, list[float]], samples: int, labels: dict[str, str] | None = None
) -> None:
    print()
    print(f"{title}, {samples} presses each:")
    medians = {}
    for who, values in latency.items():
        label = (labels or {}).get(who, who)
        if not values:
            print(f"  {label:26s} no update carried the change")
            continue
        values = sorted(values)
        medians[who] = statistics.median(values)
        p90 = values[int(0.9 * (len(values) - 1))]
        print(
            f"  {label:26s} median {medians[who] * 1000:6.1f} ms   p90 {p90 * 1000:6.1f} ms   "
            f"({len(values)}/{samples} arrived)"
        )
    if "x11vnc" in medians:
        for who, median in medians.items():
            if who != "x11vnc":
                label = (labels or {}).get(who, who)
                print(f"  ratio {label} / x11vnc (median): {ratio(median, medians['x11vnc'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--browser-scene", choices=SCENES, default="moving")
    parser.add_argument("--browser-rounds", type=int, default=2)
    parser.add_argument(
        "--through-relay",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the product path: real server, agent, console page, relay",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
