"""A real X server (Xvfb) for the agent's dialogs (the `xvfb` fixture, offered to every test by
tests/conftest.py), and tools to look at and click it."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fjernhjelp.agent.display import DisplayTarget


@pytest.fixture
def xvfb() -> Iterator[DisplayTarget]:
    """A fresh Xvfb; -displayfd lets it pick a free display number, so parallel runs
    (and other people's X servers on the machine) never collide."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        number = b""
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read_fd], [], [], 30)
            chunk = os.read(read_fd, 16) if ready else b""
            if not chunk:
                pytest.fail("Xvfb did not start")
            number += chunk
        yield DisplayTarget(display=f":{int(number)}")
    finally:
        os.close(read_fd)
        proc.terminate()
        proc.wait(10)


def click(display: DisplayTarget, x: int, y: int) -> None:
    subprocess.run(
        ["xdotool", "mousemove", "--sync", str(x), str(y), "click", "1"],
        env={**os.environ, "DISPLAY": display.display},
        check=True,
        timeout=30,
    )


def screenshot(display: DisplayTarget, path: Path) -> Path:
    """The whole screen as PNG, for a reviewer to look at (ImageMagick's import)."""
    subprocess.run(
        ["import", "-display", display.display, "-window", "root", str(path)],
        check=True,
        timeout=30,
    )
    assert path.stat().st_size > 0
    return path


def window_states(display: DisplayTarget, name: str) -> list[str]:
    """The _NET_WM_STATE of each window whose title contains ``name`` (xdotool, xprop)."""
    env = {**os.environ, "DISPLAY": display.display}
    found = subprocess.run(
        ["xdotool", "search", "--name", name], env=env, capture_output=True, text=True, timeout=30
    ).stdout.split()
    return [
        subprocess.run(
            ["xprop", "-id", window, "_NET_WM_STATE"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        for window in found
    ]


def _env(display: DisplayTarget) -> dict[str, str]:
    return {**os.environ, "DISPLAY": display.display}


def selected_text(display: DisplayTarget, start: tuple[int, int], end: tuple[int, int]) -> str:
    """Select from ``start`` to ``end`` with the mouse and read the X PRIMARY selection:
    what the window really shows, not what the agent meant it to."""
    x1, y1 = start
    x2, y2 = end
    subprocess.run(
        ["xdotool", "mousemove", "--sync", str(x1), str(y1), "mousedown", "1"],
        env=_env(display),
        check=True,
        timeout=30,
    )
    subprocess.run(
        ["xdotool", "mousemove", "--sync", str(x2), str(y2), "mouseup", "1"],
        env=_env(display),
        check=True,
        timeout=30,
    )
    read = (
        "import tkinter as tk\nr = tk.Tk()\nr.withdraw()\n"
        "import sys\nsys.stdout.buffer.write(r.selection_get(selection='PRIMARY').encode())"
    )
    result = subprocess.run(
        [sys.executable, "-c", read], env=_env(display), capture_output=True, timeout=30
    )
    return result.stdout.decode()


def type_text(display: DisplayTarget, text: str) -> None:
    """Types as a user at a Norwegian keyboard would. With the layout set, æ, ø and å are
    keys of their own; otherwise xdotool binds each to a spare key code and unbinds it
    right after, and a loaded machine's application can read the key after the unbinding
    and lose the letter."""
    subprocess.run(["setxkbmap", "no"], env=_env(display), check=True, timeout=30)
    subprocess.run(
        ["xdotool", "type", "--delay", "30", text], env=_env(display), check=True, timeout=60
    )
