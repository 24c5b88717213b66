"""What the Support client needs from the system it runs on, behind one small interface.

The session logic (joining with a code, the tunnel, consent, the streams) is written once;
what differs between Linux, Windows and macOS sits behind :class:`SupportPlatform`: screen
capture, input injection, the consent dialog and the session indicator, and the one private
folder the client may write to. A Windows or macOS client is a new class that implements it.

:class:`LinuxPlatform` delegates to what the agent already has: ``streams.desktop`` for
capture and input (X11), ``agent.consent`` and ``agent.indicator`` for the windows (their Tk
programs in ``agent.windows``). Those programs run as separate processes; in the one-file
client there is no ``python -m``, so they are started as the client executable itself with
a hidden switch (see :func:`window_command` and ``support.window``).

:class:`PrivateTempDir` is the only place the client writes: one 0700 folder it created
itself, removed on every way out it can see (leaving the ``with`` block, ``atexit``,
SIGTERM, SIGINT, SIGHUP). Only SIGKILL and a power cut escape it; nothing the client
keeps there outlives the session in any case (keys stay in memory).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fjernhjelp.agent.consent import ConsentAnswer, ConsentRequest
    from fjernhjelp.agent.display import DisplayTarget
    from fjernhjelp.agent.indicator import SessionIndicator
    from fjernhjelp.streams.desktop.capture import Screen
    from fjernhjelp.streams.desktop.input import InputInjector

# The hidden switch by which the one-file client runs one of its window programs.
WINDOW_SWITCH = "--fjernhjelp-window"
WINDOW_PROGRAMS = ("consent", "indicator")
CLEANUP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class TempDirRefused(Exception):
    """The private folder could not be made safely (wrong owner, mode, or a symlink)."""


SignalHandler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


class PrivateTempDir:
    """One private folder (0700, ours, no symlink) removed on every exit path it can see.

    Use as a context manager; ``atexit`` and handlers for SIGTERM, SIGINT and SIGHUP remove
    it too (the handlers then pass the signal on, so the process still ends as it would
    have). Files are made inside with :meth:`create`, which never follows a symlink.
    """

    def __init__(
        self, base: str | os.PathLike[str] | None = None, *, handle_signals: bool = True
    ) -> None:
        self._base = Path(base) if base is not None else Path(tempfile.gettempdir())
        self._handle_signals = handle_signals
        self._path: Path | None = None
        self._previous: dict[int, SignalHandler] = {}
        self._lock = threading.Lock()
        self.removed = False

    @property
    def path(self) -> Path:
        if self._path is None:
            raise RuntimeError("the private folder is not made yet (use it as a context manager)")
        return self._path

    def make(self) -> Path:
        if self._path is not None:
            return self._path
        if self._base.is_symlink():
            # A base folder that points elsewhere is not where the user thinks we write.
            raise TempDirRefused(f"{self._base} is a symbolic link")
        # mkdtemp makes the folder 0700 with O_EXCL semantics: nobody else's folder is reused.
        path = Path(tempfile.mkdtemp(prefix="fjernhjelp-support-", dir=self._base))
        info = path.lstat()
        if (
            not stat.S_ISDIR(info.st_mode)
            or info.st_uid != os.geteuid()
            or stat.S_IMODE(info.st_mode) & 0o077
        ):
            with contextlib.suppress(OSError):
                path.rmdir()
            raise TempDirRefused(f"{path} is not a private folder of ours")
        self._path = path
        atexit.register(self.remove)
        if self._handle_signals and threading.current_thread() is threading.main_thread():
            for signum in CLEANUP_SIGNALS:
                # A signal the process was started ignoring (SIGHUP under nohup, SIGINT
                # in a background job) does not end it: removing the folder on it would
                # leave a session running without its files. atexit still removes it.
                if signal.getsignal(signum) == signal.SIG_IGN:
                    continue
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return path

    def create(self, name: str, data: bytes = b"") -> Path:
        """A new file ``name`` (no folders, no '..') inside the folder, mode 0600."""
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"{name!r} is not a plain file name")
        target = self.path / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(target, flags, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return target

    def remove(self) -> None:
        """Remove the folder and everything in it; safe to call more than once."""
        with self._lock:
            if self._path is None or self.removed:
                return
            path = self._path
            try:
                info = path.lstat()
            except FileNotFoundError:
                info = None
            if info is not None and stat.S_ISLNK(info.st_mode):
                # Something swapped our folder for a link: remove the link, never its target.
                path.unlink()
            elif info is not None:
                # rmtree works through file descriptors on Linux and does not follow links
                # inside the folder (shutil.rmtree.avoids_symlink_attacks).
                shutil.rmtree(path, ignore_errors=True)
            self.removed = True
            self._restore_signals()
        with contextlib.suppress(ValueError):  # not registered, or interpreter shutting down
            atexit.unregister(self.remove)

    def _restore_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self._previous.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        self.remove()  # restores the previous handlers too
        if callable(previous):
            previous(signum, frame)  # SIGINT's default raises KeyboardInterrupt
        elif previous != signal.SIG_IGN:
            # The default action (end the process) once the folder is gone.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def __enter__(self) -> PrivateTempDir:
        self.make()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


def guard_extraction(meipass: str | None = None) -> bool:
    """In the one-file build: remove the unpacked program if its unpacker is gone by exit.

    PyInstaller's one-file bootloader unpacks the program into ``$TMPDIR/_MEIxxxxxx``, runs
    it as a child process, and removes the folder when the child ends, also when the
    bootloader itself gets SIGTERM, SIGHUP or SIGINT (it passes them on). If the bootloader
    is killed outright (SIGKILL), the child runs on as an orphan and nobody removes the
    folder: so the child checks at exit whether its parent is still the one that started
    it, and if not removes the folder itself. Returns whether the guard was set.
    """
    folder = meipass if meipass is not None else getattr(sys, "_MEIPASS", None)
    if not getattr(sys, "frozen", False) and meipass is None:
        return False
    if folder is None or not Path(folder).name.startswith("_MEI"):
        return False
    parent = os.getppid()

    def clean() -> None:
        if os.getppid() == parent:
            return  # the bootloader is there and removes it after we exit
        with contextlib.suppress(OSError):
            info = os.lstat(folder)
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
                shutil.rmtree(folder, ignore_errors=True)

    atexit.register(clean)
    return True


def window_command(program: str, cache_dir: Path) -> list[str]:
    """How to start one of the agent's window programs from this client.

    In the one-file build ``sys.executable`` is the client itself, which runs the program
    when given WINDOW_SWITCH; from an installed package it is Python. Either way the program
    is told to keep any cache (fontconfig's, say) in the client's private folder, not in
    the user's home.
    """
    if program not in WINDOW_PROGRAMS:
        raise ValueError(f"unknown window program {program!r}")
    if getattr(sys, "frozen", False):
        return [sys.executable, WINDOW_SWITCH, program, str(cache_dir)]
    return [sys.executable, "-m", "fjernhjelp.support.window", program, str(cache_dir)]


class SupportPlatform(Protocol):
    """The platform parts of the Support client; one implementation per operating system."""

    name: str

    def private_dir(self) -> PrivateTempDir:
        """The one folder the client may write to (made on entering, removed on every exit)."""
        ...

    def display(self) -> DisplayTarget | None:
        """Where the end user sits (None: no graphical session to show anything on)."""
        ...

    def open_screen(self, display: DisplayTarget) -> Screen:
        """Capture of the end user's screen."""
        ...

    def open_input(self, display: DisplayTarget) -> InputInjector:
        """Injection of the technician's mouse and keyboard into the end user's session."""
        ...

    async def ask_consent(
        self,
        request: ConsentRequest,
        display: DisplayTarget,
        *,
        timeout: float,  # noqa: ASYNC109 - the user's time to answer, not a call deadline
    ) -> ConsentAnswer:
        """Ask the end user; anything but an explicit Allow within ``timeout`` is a no."""
        ...

    def indicator(
        self,
        *,
        technician: str,
        organisation: str,
        display: DisplayTarget,
        permissions: Sequence[str],
    ) -> SessionIndicator:
        """The always-visible "session in progress" window with "End session" (not started)."""
        ...


class LinuxPlatform:
    """X11 on Linux, through the agent's own capture, input and Tk windows."""

    name = "linux"

    def __init__(self, temp_base: str | os.PathLike[str] | None = None) -> None:
        self._dir = PrivateTempDir(temp_base)

    def private_dir(self) -> PrivateTempDir:
        return self._dir

    def display(self) -> DisplayTarget | None:
        from fjernhjelp.agent.display import DisplayTarget
        from fjernhjelp.i18n import language_of

        # The client runs in the end user's own session, so its DISPLAY is theirs: no
        # searching for the active login as the agent (a service) must do.
        name = os.environ.get("DISPLAY")
        if not name:
            return None
        return DisplayTarget(
            display=name,
            xauthority=os.environ.get("XAUTHORITY"),
            language=language_of(os.environ.get("LANG")),
        )

    def open_screen(self, display: DisplayTarget) -> Screen:
        from fjernhjelp.streams.desktop.capture import Screen

        return Screen(display.display)

    def open_input(self, display: DisplayTarget) -> InputInjector:
        from fjernhjelp.streams.desktop.input import InputInjector

        return InputInjector(display.display)

    async def ask_consent(
        self,
        request: ConsentRequest,
        display: DisplayTarget,
        *,
        timeout: float,  # noqa: ASYNC109 - the user's time to answer, not a call deadline
    ) -> ConsentAnswer:
        from fjernhjelp.agent.consent import ask_consent

        argv = window_command("consent", self._dir.path)
        return await ask_consent(request, display=display, timeout=timeout, _argv=argv)

    def indicator(
        self,
        *,
        technician: str,
        organisation: str,
        display: DisplayTarget,
        permissions: Sequence[str],
    ) -> SessionIndicator:
        from fjernhjelp.agent.indicator import SessionIndicator

        return SessionIndicator(
            technician=technician,
            organisation=organisation,
            display=display,
            permissions=permissions,
            _argv=window_command("indicator", self._dir.path),
        )


def current_platform(temp_base: str | os.PathLike[str] | None = None) -> SupportPlatform:
    """The backend for the system this runs on; only Linux exists so far."""
    if sys.platform.startswith("linux"):
        return LinuxPlatform(temp_base)
    raise NotImplementedError(f"no Support client backend for {sys.platform} yet")
