"""Receiving a file into a folder other people may write to: a private partial file, and
putting it in place without trusting any name in that folder.

Someone with write access to a shared folder can create, rename and replace any entry in
it at any moment. So the receiver never opens a name it did not just create (``O_EXCL``
on a name with 64 random bits, ``O_NOFOLLOW``), resumes only a partial file that it owns,
that nobody else can write and that has one link, and after the rename checks by
descriptor that the name now holds the very file it verified. A file swapped in between
the hash check and the rename is removed again and the transfer fails with ``changed``:
the agent never puts, or reports as moved, content it did not verify.

Partial files are named ``.fjernhjelp-<first 32 hex of the SHA-256>-<16 random hex>.part``;
a later transfer of the same content to the same folder continues the one it finds (an
advisory lock keeps two transfers off the same partial file).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
from dataclasses import dataclass

from fjernhjelp.streams.files.roots import PathRefused

PREFIX = ".fjernhjelp-"
SUFFIX = ".part"
_RANDOM = re.compile(r"[0-9a-f]{16}")
# A filesystem without hard links answers linkat with one of these.
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


@dataclass(frozen=True)
class Partial:
    """An open partial file of ours and the name it had when we opened it."""

    fd: int
    name: str


def partial_prefix(sha256: str) -> str:
    """What every partial file of this content starts with (a random part follows)."""
    return f"{PREFIX}{sha256[:32]}-"


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _ours(st: os.stat_result) -> bool:
    """Created by us and writable by nobody else: its content is what we wrote."""
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_nlink == 1
        and st.st_uid == os.geteuid()
        and not st.st_mode & 0o022
    )


def _claim(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _reopen_kept(dir_fd: int, sha256: str) -> Partial | None:
    prefix = partial_prefix(sha256)
    for name in sorted(os.listdir(dir_fd)):
        if not name.startswith(prefix) or not name.endswith(SUFFIX):
            continue
        if not _RANDOM.fullmatch(name[len(prefix) : -len(SUFFIX)]):
            continue
        before = _lstat(dir_fd, name)
        if before is None or not _ours(before):
            continue  # someone else's, a link or a device: never opened, left alone
        try:
            fd = os.open(
                name,
                os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                dir_fd=dir_fd,
            )
        except OSError:
            continue
        after = os.fstat(fd)
        if _identity(after) == _identity(before) and _ours(after) and _claim(fd):
            os.set_blocking(fd, True)
            return Partial(fd, name)
        os.close(fd)
    return None


def open_partial(dir_fd: int, sha256: str) -> Partial:
    """Continue our kept partial file of this content, or start a new one (mode 0600)."""
    kept = _reopen_kept(dir_fd, sha256)
    if kept is not None:
        return kept
    name = f"{partial_prefix(sha256)}{secrets.token_hex(8)}{SUFFIX}"
    try:
        fd = os.open(
            name,
            os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dir_fd,
        )
    except OSError as exc:
        raise PathRefused("io_error", f"cannot create a partial file: {exc.strerror}") from exc
    _claim(fd)
    return Partial(fd, name)


def discard(dir_fd: int, partial: Partial) -> None:
    """Remove the partial file, but only if its name still holds it."""
    now = _lstat(dir_fd, partial.name)
    if now is not None and _identity(now) == _identity(os.fstat(partial.fd)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial.name, dir_fd=dir_fd)


def _swapped(what: str) -> PathRefused:
    return PathRefused("changed", f"{what} was replaced by someone else while it was written")


def place(partial: Partial, dir_fd: int, final: str, *, replace: bool) -> None:
    """Give the verified partial file its final name; checked by descriptor afterwards.

    Without ``replace`` an existing ``final`` is never overwritten (a hard link cannot
    replace a name; on a filesystem without links, checked just before the rename)."""
    mine = _identity(os.fstat(partial.fd))
    before = _lstat(dir_fd, partial.name)
    if before is None or _identity(before) != mine:
        raise _swapped("the partial file")
    if replace:
        os.replace(partial.name, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    else:
        _place_new(partial.name, dir_fd, final)
    now = _lstat(dir_fd, final)
    if now is None or _identity(now) != mine:
        # What got renamed is not what we verified: take it away again (a link or a file
        # of the swapper's; unlinking never follows a link).
        if now is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(final, dir_fd=dir_fd)
        raise _swapped(final)


def _place_new(name: str, dir_fd: int, final: str) -> None:
    try:
        os.link(name, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError as exc:
        raise PathRefused("exists", f"{final} already exists") from exc
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if _lstat(dir_fd, final) is not None:
            raise PathRefused("exists", f"{final} already exists") from exc
        os.replace(name, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)
