"""Where the technician may read and write files on the agent, and opening them safely.

A request names a path on the agent. It is allowed only inside one of the configured roots
(after the roots themselves are resolved once, at configuration time), and is opened by
walking from the root's directory one component at a time with ``O_NOFOLLOW``: a ``..``
component, a symbolic link anywhere below the root, a path that leaves every root, or a
file that is not a plain file (device, FIFO, socket, directory) is refused. Walking with
directory descriptors, instead of checking a resolved path and then opening it, leaves no
window in which a local user could swap a directory for a link between check and use.

Files with more than one hard link are refused for reading: with ``fs.protected_hardlinks``
off, a local user could link a file they cannot read (``/etc/shadow``) into a root and
have the agent, which may run as root, hand it out.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_PATH = 4096
DEFAULT_MAX_SIZE = 64 * 1024**3


class PathRefused(Exception):
    """The request is outside what the session allows; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FilePolicy:
    """What file transfers a session may make: roots, directions, largest file."""

    roots: tuple[Path, ...]
    allow_get: bool = True
    allow_put: bool = True
    max_size: int = DEFAULT_MAX_SIZE

    @classmethod
    def create(
        cls,
        roots: Iterable[str | os.PathLike[str]],
        *,
        allow_get: bool = True,
        allow_put: bool = True,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> FilePolicy:
        """Resolve each root once (links in the configured root itself are the admin's
        choice); a root that is not an existing directory is a configuration error."""
        resolved = []
        for root in roots:
            path = Path(os.path.realpath(root))
            if not path.is_dir():
                raise ValueError(f"file root {root} is not an existing directory")
            resolved.append(path)
        return cls(tuple(resolved), allow_get, allow_put, max_size)


@dataclass(frozen=True)
class Target:
    """A path inside a root, split into the root and the components below it."""

    root: Path
    parts: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def path(self) -> str:
        return str(self.root.joinpath(*self.parts))


def locate(policy: FilePolicy, raw: object, *, folder_ok: bool = False) -> Target:
    """Check a requested path against the roots; relative paths are below the first root.

    With ``folder_ok`` a root itself may be named (an upload into it): the target then
    has no parts until ``open_destination`` adds the file's own name."""
    if not policy.roots:
        raise PathRefused("no_roots", "file transfer is not enabled on this machine")
    if not isinstance(raw, str) or not raw:
        raise PathRefused("bad_path", "the path must be a non-empty string")
    if "\x00" in raw or len(raw.encode("utf-8", "surrogatepass")) > MAX_PATH:
        raise PathRefused("bad_path", "the path is too long or holds a NUL byte")
    pure = PurePosixPath(raw)
    if ".." in pure.parts:
        raise PathRefused("traversal", "'..' is not allowed in a path")
    if not pure.is_absolute():
        pure = PurePosixPath(policy.roots[0]) / pure
    best: Path | None = None
    for root in policy.roots:
        if pure.parts[: len(root.parts)] == root.parts and (
            best is None or len(root.parts) > len(best.parts)
        ):
            best = root
    if best is None:
        raise PathRefused("outside_roots", f"{raw} is outside the folders this session allows")
    rest = pure.parts[len(best.parts) :]
    if not rest and not folder_ok:
        raise PathRefused("not_a_file", "a folder cannot be transferred")
    return Target(best, tuple(rest))


def _refusal_for(dir_fd: int, name: str, error: OSError) -> PathRefused:
    if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        with contextlib.suppress(OSError):
            if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                return PathRefused("symlink", f"{name} is a symbolic link")
        return PathRefused("not_a_directory", f"{name} is not a folder")
    if error.errno == errno.ENOENT:
        return PathRefused("not_found", f"{name} does not exist")
    if error.errno in (errno.EACCES, errno.EPERM):
        return PathRefused("permission", f"{name}: permission denied")
    return PathRefused("io_error", f"{name}: {error.strerror}")


def open_parent(target: Target) -> int:
    """A directory descriptor of the folder holding ``target``, reached without links."""
    fd = os.open(target.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in target.parts[:-1]:
            try:
                child = os.open(
                    name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                )
            except OSError as exc:
                raise _refusal_for(fd, name, exc) from exc
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _own_name(raw: object) -> str:
    if not isinstance(raw, str) or raw in ("", ".", "..") or "/" in raw or "\x00" in raw:
        raise PathRefused("bad_path", "the file's own name must be one plain path component")
    if len(raw.encode("utf-8", "surrogatepass")) > 255:
        raise PathRefused("bad_path", "the file's own name is too long")
    return raw


def open_destination(target: Target, own_name: object) -> tuple[int, Target]:
    """Where an upload lands: a descriptor of its folder and the file's full target.

    A path naming an existing folder (reached without links) means "in that folder,
    under the file's own name"; any other path names the file itself."""
    if not target.parts:
        folder = os.open(target.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    else:
        parent = open_parent(target)
        try:
            folder = os.open(
                target.name,
                os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                dir_fd=parent,
            )
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return parent, target  # not a folder: the name is the file's
            refusal = _refusal_for(parent, target.name, exc)
            os.close(parent)
            raise refusal from exc
        os.close(parent)
    if own_name is None:
        os.close(folder)
        raise PathRefused("not_a_file", "a folder needs the file's own name")
    try:
        name = _own_name(own_name)
    except PathRefused:
        os.close(folder)
        raise
    return folder, Target(target.root, (*target.parts, name))


def open_for_read(target: Target) -> int:
    """An open descriptor of a plain file inside a root, for reading."""
    parent = open_parent(target)
    try:
        try:
            before = os.stat(target.name, dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            raise _refusal_for(parent, target.name, exc) from exc
        check_plain_file(before, target.name, reading=True)
        try:
            # O_NONBLOCK: should the file be swapped for a FIFO, opening must not hang.
            fd = os.open(
                target.name,
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                dir_fd=parent,
            )
        except OSError as exc:
            raise _refusal_for(parent, target.name, exc) from exc
    finally:
        os.close(parent)
    after = os.fstat(fd)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise PathRefused("changed", f"{target.name} changed while it was opened")
    try:
        check_plain_file(after, target.name, reading=True)
    except PathRefused:
        os.close(fd)
        raise
    os.set_blocking(fd, True)
    return fd


def check_plain_file(st: os.stat_result, name: str, *, reading: bool) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise PathRefused("symlink", f"{name} is a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise PathRefused("not_a_file", f"{name} is not a plain file")
    if reading and st.st_nlink > 1:
        raise PathRefused("hard_link", f"{name} has more than one hard link")
