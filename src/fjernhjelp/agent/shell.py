"""An interactive shell in a PTY on the agent, served over one tunnel channel.

Wire format. Every channel message is one message below; its first byte is the type:

=====  ======  ===============  ============================================================
type   name    direction        payload
=====  ======  ===============  ============================================================
0x01   OPEN    technician→agent first message only; UTF-8 JSON object, at most 1 KiB:
                                ``{"rows": 1..1000, "cols": 1..1000, "term": "xterm-256color",
                                "run_as": "user" | "service"}``
0x02   DATA    both ways        raw bytes: keystrokes into the PTY, output out of it; at most
                                64 KiB of payload
0x03   RESIZE  technician→agent 4 bytes: rows, cols as big-endian unsigned 16-bit, each 1..1000
0x04   EXIT    agent→technician last message; 4 bytes big-endian signed 32-bit: the shell's
                                exit code (0..255), or minus the signal number that ended it
0x05   ERROR   agent→technician last message; UTF-8 JSON ``{"code": str, "message": str}``
=====  ======  ===============  ============================================================

After EXIT or ERROR the agent closes the channel. Anything else from the technician (an
unknown type, a second OPEN, an oversized or malformed message) is answered with ERROR
``protocol`` and ends the shell.

Which account the shell runs as is the session's decision, not the technician's: the agent
passes the accounts the session allows (``{"user": ..., "service": ...}``) and the OPEN
message only picks one of them. Switching to another account needs root; an agent running
as an ordinary user can only start shells as itself and refuses anything else.

When the shell ends, or the channel closes first, every process left in the shell's
session (its own process group and any job-control groups it made) gets SIGHUP, then
SIGKILL after a grace period: nothing the technician started outlives the session. A
process that detaches with ``setsid`` escapes this; only a cgroup (a systemd scope) would
catch it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import pwd
import re
import signal
import struct
import subprocess
import termios
import tty
from collections.abc import Mapping
from dataclasses import dataclass

import psutil

from fjernhjelp.tunnel.channel import Channel, ChannelClosed

OPEN, DATA, RESIZE, EXIT, ERROR = 0x01, 0x02, 0x03, 0x04, 0x05
MAX_DATA = 64 * 1024
MAX_OPEN = 1024
MAX_DIMENSION = 1000
RUN_AS_CHOICES = ("user", "service")
_TERM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}")
_READ_SIZE = 16 * 1024
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_NO_LOGIN_SHELLS = ("nologin", "false")


class ShellError(Exception):
    """The shell could not be run or ended abnormally; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ShellRefused(ShellError):
    """The agent refused the shell (raised on the technician side)."""


class ShellProtocolError(ShellError):
    """A message that does not follow the wire format."""

    def __init__(self, message: str) -> None:
        super().__init__("protocol", message)


@dataclass(frozen=True)
class ShellAccount:
    """An account a shell may run as."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str
    groups: tuple[int, ...] = ()

    @classmethod
    def from_name(cls, name: str) -> ShellAccount:
        entry = pwd.getpwnam(name)
        return cls._from_entry(entry)

    @classmethod
    def current(cls) -> ShellAccount:
        return cls._from_entry(pwd.getpwuid(os.geteuid()))

    @classmethod
    def _from_entry(cls, entry: pwd.struct_passwd) -> ShellAccount:
        shell = entry.pw_shell or "/bin/sh"
        # A service account has nologin as its shell; the technician still needs a shell.
        if os.path.basename(shell) in _NO_LOGIN_SHELLS or not os.access(shell, os.X_OK):
            shell = "/bin/bash" if os.access("/bin/bash", os.X_OK) else "/bin/sh"
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, shell, groups)


@dataclass
class ShellOutcome:
    """What happened, for the audit log."""

    run_as: str | None = None
    account: str | None = None
    exit_status: int | None = None
    ended_by: str = "refused"  # exit | channel_closed | protocol | refused
    error: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass(frozen=True)
class OpenRequest:
    rows: int
    cols: int
    term: str
    run_as: str


# --- encoding ---------------------------------------------------------------------------


def encode_open(rows: int, cols: int, term: str, run_as: str) -> bytes:
    body = {"rows": rows, "cols": cols, "term": term, "run_as": run_as}
    return bytes([OPEN]) + json.dumps(body, separators=(",", ":")).encode()


def encode_resize(rows: int, cols: int) -> bytes:
    return bytes([RESIZE]) + struct.pack("!HH", rows, cols)


def encode_exit(status: int) -> bytes:
    return bytes([EXIT]) + struct.pack("!i", status)


def encode_error(code: str, message: str) -> bytes:
    return bytes([ERROR]) + json.dumps({"code": code, "message": message}).encode()


def _dimension(value: object, name: str) -> int:
    if type(value) is not int or not 1 <= value <= MAX_DIMENSION:
        raise ShellProtocolError(f"{name} must be an integer 1..{MAX_DIMENSION}")
    return value


def decode_open(message: bytes) -> OpenRequest:
    if not message or message[0] != OPEN:
        raise ShellProtocolError("the first message must be OPEN")
    if len(message) > 1 + MAX_OPEN:
        raise ShellProtocolError("OPEN is too large")
    try:
        body = json.loads(message[1:].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ShellProtocolError("OPEN is not a JSON object") from exc
    if not isinstance(body, dict) or set(body) != {"rows", "cols", "term", "run_as"}:
        raise ShellProtocolError("OPEN must hold exactly rows, cols, term, run_as")
    term = body["term"]
    if not isinstance(term, str) or not _TERM_RE.fullmatch(term):
        raise ShellProtocolError("term is not a terminal name")
    if body["run_as"] not in RUN_AS_CHOICES:
        raise ShellProtocolError("run_as must be 'user' or 'service'")
    return OpenRequest(
        _dimension(body["rows"], "rows"), _dimension(body["cols"], "cols"), term, body["run_as"]
    )


def decode_resize(payload: bytes) -> tuple[int, int]:
    if len(payload) != 4:
        raise ShellProtocolError("RESIZE must carry 4 bytes")
    rows, cols = struct.unpack("!HH", payload)
    return _dimension(rows, "rows"), _dimension(cols, "cols")


# --- fd helpers -------------------------------------------------------------------------


async def _wait_fd(fd: int, *, write: bool = False) -> None:
    """Wait until ``fd`` is readable (or writable) without blocking the event loop."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            await _wait_fd(fd, write=True)
            continue
        view = view[written:]


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    # The kernel sends SIGWINCH to the terminal's foreground process group itself when
    # TIOCSWINSZ changes the size, so no signal has to be sent by hand.
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _terminal_size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 24, 80
    rows = min(max(size.lines, 1), MAX_DIMENSION)
    cols = min(max(size.columns, 1), MAX_DIMENSION)
    return rows, cols


# --- agent side -------------------------------------------------------------------------


def _take_controlling_terminal() -> None:
    # Runs in the child between fork and exec (after setsid): make the PTY slave on fd 0
    # the controlling terminal so job control and ^C work. Popen has no option for this;
    # the function only makes one system call, so it is safe in a threaded parent.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _child_env(account: ShellAccount, term: str) -> dict[str, str]:
    return {
        "HOME": account.home,
        "USER": account.name,
        "LOGNAME": account.name,
        "SHELL": account.shell,
        "PATH": _ROOT_PATH if account.uid == 0 else _SAFE_PATH,
        "TERM": term,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }


def _spawn(account: ShellAccount, term: str, slave: int) -> subprocess.Popen[bytes]:
    switch = account.uid != os.geteuid()
    cwd = account.home if os.path.isdir(account.home) else "/"
    return subprocess.Popen(  # noqa: S603 - argv is the account's own shell, no string parsing
        [account.shell, "-l"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=_child_env(account, term),
        start_new_session=True,
        preexec_fn=_take_controlling_terminal,
        user=account.uid if switch else None,
        group=account.gid if switch else None,
        extra_groups=list(account.groups) if switch else None,
        close_fds=True,
    )


def _session_members(sid: int) -> list[int]:
    members = []
    for pid in psutil.pids():
        with contextlib.suppress(OSError):
            if os.getsid(pid) == sid:
                members.append(pid)
    return members


def _signal_session(sid: int, signum: int) -> None:
    for pid in _session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


async def _wait_exit(proc: subprocess.Popen[bytes]) -> int:
    """The exit status, waited for without a thread (a pidfd becomes readable on exit)."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (OSError, AttributeError):
        return await asyncio.to_thread(proc.wait)
    try:
        while proc.poll() is None:
            await _wait_fd(pidfd)
    finally:
        os.close(pidfd)
    return proc.returncode


async def _end_session(proc: subprocess.Popen[bytes], grace: float) -> None:
    sid = proc.pid
    _signal_session(sid, signal.SIGHUP)
    _signal_session(sid, signal.SIGCONT)  # a stopped job cannot act on SIGHUP
    # The members are mostly not our children, so there is nothing to wait on: look again
    # every 50 ms. poll() reaps the shell, which would otherwise stay a member as a zombie.
    for _ in range(max(1, int(grace / 0.05))):
        proc.poll()
        if not _session_members(sid):
            break
        await asyncio.sleep(0.05)
    _signal_session(sid, signal.SIGKILL)
    if proc.poll() is None:
        await _wait_exit(proc)


def _refusal(requested: str, accounts: Mapping[str, ShellAccount]) -> tuple[str, str] | None:
    account = accounts.get(requested)
    if account is None:
        allowed = ", ".join(sorted(accounts)) or "none"
        return "run_as_not_allowed", f"this session allows a shell as: {allowed}"
    if os.geteuid() != 0 and account.uid != os.geteuid():
        return (
            "needs_root",
            f"the agent does not run as root and can only start shells as "
            f"{pwd.getpwuid(os.geteuid()).pw_name}, not {account.name}",
        )
    return None


async def serve_shell(
    channel: Channel,
    accounts: Mapping[str, ShellAccount],
    *,
    open_timeout: float = 30.0,
    kill_grace: float = 2.0,
) -> ShellOutcome:
    """Run one shell for the technician at the other end of ``channel``.

    ``accounts`` maps ``"user"`` and/or ``"service"`` to the account the session allows
    for that choice; a choice missing from it is refused. Returns what happened (never
    raises for the technician's mistakes; they are in the outcome and sent as ERROR).
    """
    outcome = ShellOutcome()
    try:
        first = await asyncio.wait_for(channel.recv(), open_timeout)
        request = decode_open(first)
    except ShellProtocolError as exc:
        outcome.ended_by, outcome.error = "protocol", exc.message
        await _send_error_and_close(channel, exc.code, exc.message)
        return outcome
    except TimeoutError:
        outcome.ended_by, outcome.error = "protocol", "no OPEN in time"
        await _send_error_and_close(channel, "protocol", "no OPEN in time")
        return outcome
    except ChannelClosed:
        outcome.ended_by = "channel_closed"
        return outcome
    outcome.run_as = request.run_as
    refusal = _refusal(request.run_as, accounts)
    if refusal is not None:
        outcome.ended_by, outcome.error = "refused", refusal[0]
        await _send_error_and_close(channel, *refusal)
        return outcome
    account = accounts[request.run_as]
    outcome.account = account.name
    master, slave = os.openpty()
    try:
        _set_winsize(slave, request.rows, request.cols)
        if os.geteuid() == 0:
            # Like a login: the terminal belongs to the user the shell runs as.
            os.fchown(slave, account.uid, -1)
            os.fchmod(slave, 0o620)
        try:
            proc = _spawn(account, request.term, slave)
        except OSError as exc:
            outcome.ended_by, outcome.error = "refused", "spawn_failed"
            await _send_error_and_close(channel, "spawn_failed", exc.strerror or str(exc))
            return outcome
    finally:
        os.close(slave)  # the child holds it now; the master reads EIO once all copies close
    os.set_blocking(master, False)
    try:
        await _run(channel, proc, master, outcome, kill_grace)
    finally:
        os.close(master)
    return outcome


async def _send_error_and_close(channel: Channel, code: str, message: str) -> None:
    with contextlib.suppress(ChannelClosed):
        await channel.send(encode_error(code, message))
    await channel.close(code)


async def _pump_output(channel: Channel, master: int, outcome: ShellOutcome) -> None:
    while True:
        await _wait_fd(master)
        try:
            data = os.read(master, _READ_SIZE)
        except BlockingIOError:
            continue
        except OSError as exc:
            if exc.errno == errno.EIO:  # every slave copy closed: the session is over
                return
            raise
        if not data:
            return
        outcome.bytes_out += len(data)
        await channel.send(bytes([DATA]) + data)


async def _pump_input(channel: Channel, master: int, outcome: ShellOutcome) -> None:
    while True:
        message = await channel.recv()
        if not message:
            raise ShellProtocolError("empty message")
        kind, payload = message[0], message[1:]
        if kind == DATA:
            if len(payload) > MAX_DATA:
                raise ShellProtocolError(f"DATA over {MAX_DATA} bytes")
            outcome.bytes_in += len(payload)
            await _write_all(master, payload)
        elif kind == RESIZE:
            _set_winsize(master, *decode_resize(payload))
        else:
            raise ShellProtocolError(f"unexpected message type {kind:#04x}")


async def _run(
    channel: Channel,
    proc: subprocess.Popen[bytes],
    master: int,
    outcome: ShellOutcome,
    kill_grace: float,
) -> None:
    output = asyncio.create_task(_pump_output(channel, master, outcome))
    incoming = asyncio.create_task(_pump_input(channel, master, outcome))
    exited = asyncio.create_task(_wait_exit(proc))
    try:
        await asyncio.wait({exited, incoming}, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            # The shell is gone; end what it left behind so the PTY closes and all output
            # written before that reaches the technician, then report the status.
            await _end_session(proc, kill_grace)
            with contextlib.suppress(ChannelClosed, TimeoutError):
                await asyncio.wait_for(output, kill_grace)
            outcome.exit_status = exited.result()  # Popen gives -N for signal N
            outcome.ended_by = "exit"
            with contextlib.suppress(ChannelClosed):
                await channel.send(encode_exit(outcome.exit_status))
            await channel.close("exit")
            return
        problem = incoming.exception()
        await _end_session(proc, kill_grace)
        outcome.exit_status = proc.returncode
        if isinstance(problem, ShellProtocolError):
            outcome.ended_by, outcome.error = "protocol", problem.message
            await _send_error_and_close(channel, problem.code, problem.message)
        elif isinstance(problem, ChannelClosed) or problem is None:
            outcome.ended_by = "channel_closed"
        else:
            raise problem
    finally:
        for task in (output, incoming, exited):
            task.cancel()
        await asyncio.gather(output, incoming, exited, return_exceptions=True)
        if proc.poll() is None:  # cancelled from outside: still never leave the shell running
            _signal_session(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait)


# --- technician side --------------------------------------------------------------------


async def run_shell_client(
    channel: Channel,
    stdin_fd: int,
    stdout_fd: int,
    *,
    run_as: str = "user",
    term: str | None = None,
) -> int:
    """Connect the local terminal to a remote shell; returns the shell's exit status.

    Puts ``stdin_fd`` in raw mode while connected (restored afterwards) and passes window
    size changes (SIGWINCH) on. Raises ShellRefused if the agent refuses or reports an
    error, ShellProtocolError if the agent breaks the wire format, and ChannelClosed if
    the tunnel ends before the shell does.
    """
    if run_as not in RUN_AS_CHOICES:
        raise ValueError(f"run_as must be one of {RUN_AS_CHOICES}")
    term = term or os.environ.get("TERM") or "xterm-256color"
    if not _TERM_RE.fullmatch(term):
        term = "xterm-256color"
    loop = asyncio.get_running_loop()
    rows, cols = _terminal_size(stdout_fd)
    await channel.send(encode_open(rows, cols, term, run_as))

    saved = termios.tcgetattr(stdin_fd) if os.isatty(stdin_fd) else None
    if saved is not None:
        tty.setraw(stdin_fd, termios.TCSANOW)
    resize_hooked = False
    pending: set[asyncio.Task[None]] = set()

    def on_resize() -> None:
        size = _terminal_size(stdout_fd)
        task = loop.create_task(_send_quietly(channel, encode_resize(*size)))
        pending.add(task)
        task.add_done_callback(pending.discard)

    try:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGWINCH, on_resize)
            resize_hooked = True
        keys = asyncio.create_task(_forward_keys(channel, stdin_fd))
        try:
            return await _receive_until_exit(channel, stdout_fd)
        finally:
            keys.cancel()
            await asyncio.gather(keys, return_exceptions=True)
    finally:
        if resize_hooked:
            loop.remove_signal_handler(signal.SIGWINCH)
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)


async def _send_quietly(channel: Channel, message: bytes) -> None:
    with contextlib.suppress(ChannelClosed):
        await channel.send(message)


async def _forward_keys(channel: Channel, stdin_fd: int) -> None:
    while True:
        await _wait_fd(stdin_fd)
        try:
            data = os.read(stdin_fd, MAX_DATA)
        except BlockingIOError:
            continue
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        if not data:
            return  # local end of input; the remote shell goes on until it exits
        try:
            await channel.send(bytes([DATA]) + data)
        except ChannelClosed:
            return


async def _receive_until_exit(channel: Channel, stdout_fd: int) -> int:
    while True:
        message = await channel.recv()
        if not message:
            raise ShellProtocolError("empty message from the agent")
        kind, payload = message[0], message[1:]
        if kind == DATA:
            await _write_all(stdout_fd, payload)
        elif kind == EXIT:
            if len(payload) != 4:
                raise ShellProtocolError("EXIT must carry 4 bytes")
            await channel.close("exit")
            return int(struct.unpack("!i", payload)[0])
        elif kind == ERROR:
            code, text = _decode_error(payload)
            await channel.close(code)
            raise ShellRefused(code, text)
        else:
            raise ShellProtocolError(f"unexpected message type {kind:#04x} from the agent")


def _decode_error(payload: bytes) -> tuple[str, str]:
    try:
        body = json.loads(payload.decode("utf-8"))
        return str(body["code"])[:64], str(body["message"])[:1000]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        return "protocol", "malformed ERROR message from the agent"
