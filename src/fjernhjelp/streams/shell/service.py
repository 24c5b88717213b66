"""An interactive shell in a PTY on the agent, served over one tunnel channel.

The messages on the channel are specified in ``streams.shell.wire``.

Which account the shell runs as is the session's decision, not the technician's: the agent
passes the accounts there are (``{"user": ..., "service": ...}``), the channel opens with
an OFFER of those this session may use, and the OPEN message only picks one of them.
Switching to another account needs root; an agent running as an ordinary user can only
start shells as itself and refuses anything else.

"Terminal as administrator" (the ticket's ``terminal_admin``) is needed for a shell as
the agent's own account (``service``), always, and for any shell as root. Always, not
only when the agent runs as root: the service account holds the agent's identity key and
configuration, so a shell as it can impersonate the machine and rewrite its consent
policy, which is administering it whoever the account is; and the rule then does not
depend on how the agent was installed, which neither the server nor the admin who ticks
the box can see. Plain ``terminal`` is a shell as the person at the machine, as they are.

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
import os
import pwd
import signal
import subprocess
import termios
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import psutil

from fjernhjelp.streams.shell.wire import (
    DATA,
    MAX_DATA,
    RESIZE,
    RUN_AS_CHOICES,
    ShellChoice,
    ShellOffer,
    ShellProtocolError,
    decode_open,
    decode_resize,
    encode_error,
    encode_exit,
    encode_offer,
    set_winsize,
    wait_fd,
    write_all,
)
from fjernhjelp.tunnel.channel import Channel, ChannelClosed

_READ_SIZE = 16 * 1024
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_NO_LOGIN_SHELLS = ("nologin", "false")


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
    def from_uid(cls, uid: int) -> ShellAccount:
        """E.g. the desktop user: ``ShellAccount.from_uid(find_active_display().uid)``."""
        return cls._from_entry(pwd.getpwuid(uid))

    @classmethod
    def current(cls) -> ShellAccount:
        """The agent's own account. Its home is the one the agent runs with ($HOME, which
        systemd sets for the service user), so an agent started with its own home does
        not read another account's shell start-up files."""
        account = cls._from_entry(pwd.getpwuid(os.geteuid()))
        home = os.environ.get("HOME")
        if home and os.path.isdir(home) and home != account.home:
            account = replace(account, home=home)
        return account

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
    account: str | None = None  # the OS account the shell ran as (set once it started)
    uid: int | None = None
    exit_status: int | None = None
    ended_by: str = "refused"  # exit | channel_closed | protocol | refused
    error: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0


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
    """Live processes of the session (a zombie has ended; it only waits to be reaped)."""
    members = []
    for pid in psutil.pids():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(pid) == sid and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
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
            await wait_fd(pidfd)
    finally:
        os.close(pidfd)
    return proc.returncode


async def _end_session(proc: subprocess.Popen[bytes], grace: float) -> None:
    sid = proc.pid
    _signal_session(sid, signal.SIGHUP)
    _signal_session(sid, signal.SIGCONT)  # a stopped job cannot act on SIGHUP
    await _wait_session_gone(proc, grace)
    _signal_session(sid, signal.SIGKILL)
    # SIGKILL is delivered asynchronously; wait until the kernel has ended them all.
    await _wait_session_gone(proc, grace)
    if proc.poll() is None:
        await _wait_exit(proc)


async def _wait_session_gone(proc: subprocess.Popen[bytes], limit: float) -> None:
    # The members are mostly not our children, so there is nothing to wait on: look again
    # every 50 ms. poll() reaps the shell, which would otherwise stay a member as a zombie.
    for _ in range(max(1, int(limit / 0.05))):
        proc.poll()
        if not _session_members(proc.pid):
            return
        await asyncio.sleep(0.05)


def needs_admin(run_as: str, account: ShellAccount) -> bool:
    """Whether a shell as ``account`` needs "terminal as administrator" (see above)."""
    return run_as == "service" or account.uid == 0


def _refusal(
    requested: str, accounts: Mapping[str, ShellAccount], admin: bool
) -> tuple[str, str] | None:
    account = accounts.get(requested)
    if account is None:
        offered = shell_offer(accounts, admin)
        return (
            "run_as_not_offered",
            f"there is no {requested} account to start a shell as; "
            f"this session offers: {offered.describe() if offered else 'none'}",
        )
    if needs_admin(requested, account) and not admin:
        return (
            "needs_terminal_admin",
            f"a shell as {account.name} ({requested}) needs the permission "
            f"'terminal as administrator', which this session does not have",
        )
    if os.geteuid() != 0 and account.uid != os.geteuid():
        return (
            "needs_root",
            f"the agent does not run as root and can only start shells as "
            f"{pwd.getpwuid(os.geteuid()).pw_name}, not {account.name}",
        )
    return None


def shell_offer(accounts: Mapping[str, ShellAccount], admin: bool) -> ShellOffer | None:
    """What this session may choose from, the person's own account first (the default:
    the least the technician needs); None if nothing."""
    choices: list[ShellChoice] = []
    for run_as in RUN_AS_CHOICES:
        account = accounts.get(run_as)
        if account is None or _refusal(run_as, accounts, admin) is not None:
            continue
        if any(c.uid == account.uid for c in choices):
            continue  # an unprivileged agent is the user: one account, one choice
        choices.append(ShellChoice(run_as, account.name, account.uid))
    return ShellOffer(tuple(choices), choices[0].run_as) if choices else None


def _no_offer(accounts: Mapping[str, ShellAccount], admin: bool) -> tuple[str, str]:
    """Why nothing is offered: the first account's reason, or that there is none."""
    for run_as in RUN_AS_CHOICES:
        if run_as in accounts:
            refusal = _refusal(run_as, accounts, admin)
            if refusal is not None:
                return refusal
    return "no_shell_account", "there is no account to start a shell as on this machine"


async def serve_shell(
    channel: Channel,
    accounts: Mapping[str, ShellAccount],
    *,
    admin: bool = False,
    on_started: Callable[[ShellOutcome], None] | None = None,
    open_timeout: float = 300.0,
    kill_grace: float = 2.0,
) -> ShellOutcome:
    """Run one shell for the technician at the other end of ``channel``.

    ``accounts`` maps ``"user"`` and/or ``"service"`` to the account for that choice; a
    choice missing from it is refused. ``admin`` is whether the ticket allows
    ``terminal_admin``. ``on_started`` hears of the shell once it runs (the account it
    runs as is in the outcome). Returns what happened (never raises for the technician's
    mistakes; they are in the outcome and sent as ERROR). ``open_timeout`` is long: a
    technician may be choosing between two accounts.
    """
    outcome = ShellOutcome()
    offer = shell_offer(accounts, admin)
    if offer is None:
        code, message = _no_offer(accounts, admin)
        outcome.error = code
        await _send_error_and_close(channel, code, message)
        return outcome
    try:
        await channel.send(encode_offer(offer))
    except ChannelClosed:
        outcome.ended_by = "channel_closed"
        return outcome
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
    refusal = _refusal(request.run_as, accounts, admin)
    if refusal is not None:
        outcome.ended_by, outcome.error = "refused", refusal[0]
        await _send_error_and_close(channel, *refusal)
        return outcome
    account = accounts[request.run_as]
    master, slave = os.openpty()
    try:
        set_winsize(slave, request.rows, request.cols)
        if os.geteuid() == 0:
            # Like a login: the terminal belongs to the user the shell runs as.
            os.fchown(slave, account.uid, -1)
            os.fchmod(slave, 0o620)
        try:
            proc = _spawn(account, request.term, slave)
        except OSError as exc:
            os.close(master)
            outcome.ended_by, outcome.error = "refused", "spawn_failed"
            await _send_error_and_close(channel, "spawn_failed", exc.strerror or str(exc))
            return outcome
    finally:
        os.close(slave)  # the child holds it now; the master reads EIO once all copies close
    outcome.account, outcome.uid = account.name, account.uid
    if on_started is not None:
        on_started(outcome)
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
        await wait_fd(master)
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
            await write_all(master, payload)
        elif kind == RESIZE:
            set_winsize(master, *decode_resize(payload))
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
