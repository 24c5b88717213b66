"""A real X server (Xvfb) and real applications on it, for desktop tests and benchmarks."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from Xlib import X
from Xlib import display as xdisplay

APPS = Path(__file__).parent / "apps"


class Xvfb:
    def __init__(self, number: int, width: int, height: int, proc: subprocess.Popen[bytes]) -> None:
        self.number = number
        self.display = f":{number}"
        self.width = width
        self.height = height
        self.initial = (width, height)
        self.proc = proc

    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display}

    def screen(self) -> np.ndarray:
        """The screen as (h, w, 3) R,G,B, read with python-xlib's XGetImage.

        Deliberately not through mss (the agent's own capture path).
        """
        d = xdisplay.Display(self.display)
        try:
            root = d.screen().root
            image = root.get_image(0, 0, self.width, self.height, X.ZPixmap, 0xFFFFFFFF)
            data = np.frombuffer(image.data, np.uint8).reshape(self.height, self.width, 4)
            return data[:, :, 2::-1].copy()
        finally:
            d.close()

    def resize(self, width: int, height: int) -> None:
        """Change the screen size with RandR, as a user changing the resolution would."""
        mode = f"{width}x{height}"
        if (width, height) != self.initial:
            name = f"fjh_{mode}"
            env = self.env()
            subprocess.run(["xrandr", "--newmode", name, "60", str(width), str(width + 48),
                            str(width + 152), str(width + 304), str(height), str(height + 3),
                            str(height + 7), str(height + 30)], env=env, check=False)  # fmt: skip
            subprocess.run(["xrandr", "--addmode", "screen", name], env=env, check=False)
            mode = name
        subprocess.run(
            ["xrandr", "--output", "screen", "--mode", mode, "--fb", f"{width}x{height}"],
            env=self.env(),
            check=True,
        )
        self.width, self.height = width, height

    def run(self, *args: str, **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(list(args), env=self.env(), **kwargs)  # type: ignore[call-overload]


def _free_display() -> int:
    for _ in range(200):
        n = random.randint(100, 899)
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError("no free X display number")


@contextmanager
def xvfb(width: int = 1280, height: int = 800) -> Iterator[Xvfb]:
    for _attempt in range(5):
        number = _free_display()
        proc = subprocess.Popen(
            [
                "Xvfb",
                f":{number}",
                "-screen",
                "0",
                f"{width}x{height}x24",
                "-nolisten",
                "tcp",
                "-noreset",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        socket = Path(f"/tmp/.X11-unix/X{number}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None and not socket.exists():
            time.sleep(0.05)
        if proc.poll() is None and socket.exists():
            break
        proc.kill()
        proc.wait()
    else:
        raise RuntimeError("Xvfb did not start")
    server = Xvfb(number, width, height, proc)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class EntryApp:
    """tests/desktop/apps/entry_app.py running on a display."""

    # As in the application (below the session indicator, which lists what the session
    # may do and so takes two or three lines at the top of the screen).
    ENTRY = (200, 240)
    BUTTON = (200, 300)

    def __init__(self, server: Xvfb, workdir: Path) -> None:
        self.result = workdir / "result.txt"
        self.key_log = workdir / "keys.txt"
        self.key_log.write_text("")
        self.proc = server.run(
            sys.executable,
            str(APPS / "entry_app.py"),
            str(self.result),
            str(self.key_log),
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.proc.kill()
            raise RuntimeError(f"test application did not start: {line!r}")

    def keys(self) -> list[str]:
        return self.key_log.read_text(encoding="utf-8").split()

    def wait_result(self, timeout: float = 20) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.result.exists():
                return self.result.read_text(encoding="utf-8")
            time.sleep(0.05)
        return None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ClipboardApp:
    """tests/desktop/apps/clipboard_tool.py in ``serve`` mode: an application on the
    display that copies and pastes when told (each call waits for its answer)."""

    def __init__(self, server: Xvfb) -> None:
        self.proc = server.run(
            sys.executable,
            str(APPS / "clipboard_tool.py"),
            "serve",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        if self._answer() != {"ready": True}:
            self.stop()
            raise RuntimeError("clipboard application did not start")

    def _answer(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {}

    def _ask(self, command: dict[str, object]) -> dict[str, object]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        self.proc.stdin.flush()
        return self._answer()

    def copy(self, text: str) -> None:
        assert self._ask({"copy": text}) == {"copied": text}

    def paste(self) -> str:
        return str(self._ask({"paste": True})["pasted"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_for(predicate: object, timeout: float = 10) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():  # type: ignore[operator]
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def photo(width: int, height: int, seed: int = 1) -> np.ndarray:
    """A photo-like (h, w, 3) R,G,B image: smooth colour fields with grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [
            128 + 100 * np.sin(x / 37.0 + seed) * np.cos(y / 23.0),
            128 + 100 * np.sin((x + y) / 51.0 + seed),
            128 + 100 * np.cos(x / 19.0 - y / 41.0),
        ],
        axis=-1,
    )
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def put_image(server: Xvfb, image: np.ndarray, x: int, y: int) -> None:
    """Draw an R,G,B image onto the root window (in strips: core requests are small)."""
    d = xdisplay.Display(server.display)
    root = d.screen().root
    gc = root.create_gc()
    height, width = image.shape[:2]
    bgrx = np.zeros((height, width, 4), np.uint8)
    bgrx[:, :, :3] = image[:, :, ::-1]
    strip = max(1, 200_000 // (width * 4))
    for top in range(0, height, strip):
        rows = bgrx[top : top + strip]
        root.put_image(gc, x, y + top, width, len(rows), X.ZPixmap, 24, 0, rows.tobytes())
    d.sync()
    d.close()
