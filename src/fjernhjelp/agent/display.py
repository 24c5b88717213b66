"""Finding the logged-in user's X display, and running the agent's small dialog programs there.

The agent is a service with no display of its own. Dialogs (consent, session indicator)
are separate processes, so a stuck window system never blocks the agent's event loop,
and when the agent runs as root they run as the desktop user, who is the one they ask.
Parent and dialog speak JSON lines: the parent writes one request line to the dialog's
stdin and keeps stdin open (the dialog exits when it closes; the indicator also takes chat
commands there, one a line); the dialog writes events to stdout, one JSON object a line.

Which display: the local X displays that processes of an active login session point at
(``DISPLAY=:N`` with a socket in ``/tmp/.X11-unix``). systemd-logind, where present, tells
which user's session is active; a remote display (``host:10`` from SSH forwarding) is
never chosen: consent is asked of whoever sits at the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fjernhjelp.i18n import language_of

_LOCAL_DISPLAY = re.compile(r"(?:unix)?:(\d+)(?:\.\d+)?")
MAX_EVENT = 64 * 1024


@dataclass(frozen=True)
class DisplayTarget:
    """An X display to show dialogs on, and whose it is."""

    display: str
    xauthority: str | None = None
    uid: int | None = None  # run dialogs as this user (when the agent is root)
    gid: int | None = None
    language: str | None = None  # "nb" or "en", from the session's LANG

    @property
    def number(self) -> int | None:
        match = _LOCAL_DISPLAY.fullmatch(self.display)
        return int(match.group(1)) if match else None


def _environ(path: Path) -> dict[str, str]:
    raw = path.read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _logind_active_uids() -> set[int]:
    """Users with an active, local, graphical session according to logind (empty if none)."""
    loginctl = shutil.which("loginctl")
    if loginctl is None:
        return set()
    try:
        listing = subprocess.run(  # noqa: S603 - fixed argv
            [loginctl, "list-sessions", "--no-legend"],
            capture_output=True,
            text=True,
            timeout=3,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    uids = set()
    for line in listing.splitlines():
        session = line.split()[0] if line.split() else ""
        if not session.isalnum():
            continue
        try:
            props = subprocess.run(  # noqa: S603 - fixed argv, session id checked above
                [loginctl, "show-session", session, "-p", "Active", "-p", "Remote", "-p", "User"],
                capture_output=True,
                text=True,
                timeout=3,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        values = dict(p.split("=", 1) for p in props.splitlines() if "=" in p)
        if values.get("Active") == "yes" and values.get("Remote") != "yes":
            with contextlib.suppress(ValueError):
                uids.add(int(values.get("User", "")))
    return uids


def find_active_display(
    *,
    proc: Path = Path("/proc"),
    x11_dir: Path = Path("/tmp/.X11-unix"),  # noqa: S108 - the X server's socket folder
    active_uids: Collection[int] | None = None,
) -> DisplayTarget | None:
    """The display of the user sitting at the machine, or None if there is none.

    Blocking (reads /proc, may ask loginctl): call it with ``asyncio.to_thread``.
    """
    if active_uids is None:
        active_uids = _logind_active_uids()
    found: dict[tuple[int, int], DisplayTarget] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid = entry.stat().st_uid
            env = _environ(entry / "environ")
        except OSError:
            continue
        match = _LOCAL_DISPLAY.fullmatch(env.get("DISPLAY", ""))
        if match is None or not (x11_dir / f"X{match.group(1)}").exists():
            continue
        number = int(match.group(1))
        if (uid, number) in found:
            continue
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            gid = uid
        found[(uid, number)] = DisplayTarget(
            display=f":{number}",
            xauthority=env.get("XAUTHORITY") or None,
            uid=uid,
            gid=gid,
            language=language_of(env.get("LC_MESSAGES") or env.get("LANG")),
        )
    if not found:
        return None
    # The active session's user first; then anyone but root (a display manager's greeter
    # runs as its own user, root's own processes are more often services); lowest display.
    best = min(found, key=lambda k: (k[0] not in active_uids, k[0] == 0, k[1]))
    return found[best]


# --- running a dialog program -----------------------------------------------------------


@dataclass
class DialogProcess:
    """A running dialog program and the events it has sent."""

    process: asyncio.subprocess.Process
    events: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None

    async def next_event(self, *, within: float) -> dict[str, Any] | None:
        """The next event; None if there is none, with ``problem`` saying why: ``timeout``
        (silent for ``within`` seconds), ``ended`` (output closed) or ``malformed``."""
        assert self.process.stdout is not None
        self.problem = None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), within)
        except TimeoutError:
            self.problem = "timeout"
            return None
        except (ValueError, asyncio.LimitOverrunError):
            self.problem = "malformed"
            return None
        if not line:
            self.problem = "ended"
            return None
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            self.problem = "malformed"
            return None
        self.events.append(event)
        return event

    async def send(self, command: dict[str, Any]) -> bool:
        """Write one command line to the program (the indicator's chat); False if it is gone."""
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing() or self.process.returncode is not None:
            return False
        try:
            stdin.write(json.dumps(command).encode() + b"\n")
            await stdin.drain()
        except ConnectionError:
            return False
        return True

    async def stop(self) -> None:
        """End the program: close its stdin (it exits), then terminate, then kill."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        if self.process.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 2)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 2)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()


def _dialog_env(target: DisplayTarget, home: str) -> dict[str, str]:
    env = {
        "DISPLAY": target.display,
        "HOME": home,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    if target.xauthority:
        env["XAUTHORITY"] = target.xauthority
    if getattr(sys, "frozen", False):
        # The one-file Support client starts its windows as itself. PyInstaller's
        # bootloader (6.9 and later) reuses the folder the client already unpacked when it
        # finds these in the environment; without them every window unpacked the whole
        # bundle again, a few seconds each (bench/support.py), into a folder of its own.
        env.update({k: v for k, v in os.environ.items() if k.startswith(_PYINSTALLER_ENV)})
    return env


_PYINSTALLER_ENV = "_PYI_"


async def launch_dialog(
    module: str, target: DisplayTarget, *, argv: list[str] | None = None
) -> DialogProcess:
    """Start ``python -m module`` on ``target``'s display, not yet told what to show: it
    loads Python and Tk and then waits for its request on stdin (:meth:`DialogProcess.send`).

    ``argv`` replaces the command (the Support client's own windows; tests use it to stand
    in a broken dialog).
    """
    switch = (
        os.geteuid() == 0 and target.uid is not None and target.uid != 0 and target.gid is not None
    )
    home = "/"
    if target.uid is not None:
        with contextlib.suppress(KeyError):
            home = pwd.getpwuid(target.uid).pw_dir
    process = await asyncio.create_subprocess_exec(
        *(argv or [sys.executable, "-m", module]),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=_dialog_env(target, home),
        cwd="/",
        user=target.uid if switch else None,
        group=target.gid if switch else None,
        extra_groups=[] if switch else None,
        limit=MAX_EVENT,
        start_new_session=True,  # the agent's signals (^C in a foreground run) are not theirs
    )
    return DialogProcess(process)


async def start_dialog(
    module: str,
    request: dict[str, Any],
    target: DisplayTarget,
    *,
    argv: list[str] | None = None,
    prestarted: DialogProcess | None = None,
) -> DialogProcess:
    """Start ``python -m module`` on ``target``'s display and send it ``request``.

    ``prestarted`` is the same program launched ahead (:func:`launch_dialog`), already
    loaded: it gets the request, and a fresh one is started only if it has gone away.
    ``argv`` replaces the command (tests use it to stand in a broken dialog).
    """
    if prestarted is not None:
        if await prestarted.send(request):
            return prestarted
        await prestarted.stop()
    dialog = await launch_dialog(module, target, argv=argv)
    await dialog.send(request)  # a program that is already gone says so on its stdout
    return dialog


@dataclass(frozen=True)
class ShownWindow:
    """Where a dialog appeared (for tests and screenshots): X window id, button centres."""

    window: int
    buttons: dict[str, tuple[int, int]]

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> ShownWindow | None:
        try:
            buttons = {str(name): (int(xy[0]), int(xy[1])) for name, xy in event["buttons"].items()}
            return cls(int(event["window"]), buttons)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(value: str, limit: int = 200) -> str:
    """A name from elsewhere, fit to show: no control or direction characters, one line,
    bounded, so a crafted technician name cannot write its own lines into a dialog."""
    text = _CONTROL.sub(" ", value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
