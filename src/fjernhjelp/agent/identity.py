"""The agent's Ed25519 identity key: made on first start, kept readable by the service only.

The server learns the public half at enrolment; from then on the agent proves it holds the
private half on every connection, and signs the tunnel handshake with it. The file holds
the raw 32-byte private key. It is created with mode 0600 by the account the agent runs
as, and every load checks that it still is: a key that others can read, or that belongs
to another account, is refused rather than used, since anyone who read it could pose as
this machine.
"""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fjernhjelp.control.package import fingerprint

KEY_LENGTH = 32


class InsecureKeyFile(Exception):
    """The identity key file is unsafe to use; ``problem`` says why."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class AgentIdentity:
    private_key: Ed25519PrivateKey

    @property
    def public_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def public_b64(self) -> str:
        return base64.urlsafe_b64encode(self.public_bytes).decode().rstrip("=")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_bytes)

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)


def _check(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise InsecureKeyFile(path, "is not a plain file")
    if st.st_mode & 0o077:
        raise InsecureKeyFile(
            path, f"mode {stat.S_IMODE(st.st_mode):04o} lets others read it; it must be 0600"
        )
    if st.st_uid != os.geteuid():
        raise InsecureKeyFile(path, f"belongs to uid {st.st_uid}, not to the agent's account")


def load_identity(path: Path) -> AgentIdentity:
    """Load the key, refusing a file others can read; FileNotFoundError if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise InsecureKeyFile(path, f"cannot be opened safely ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as fh:
        _check(path, os.fstat(fd))
        raw = fh.read(KEY_LENGTH + 1)
    if len(raw) != KEY_LENGTH:
        raise InsecureKeyFile(path, f"holds {len(raw)} bytes, not a {KEY_LENGTH}-byte key")
    return AgentIdentity(Ed25519PrivateKey.from_private_bytes(raw))


def load_or_create_identity(path: Path) -> AgentIdentity:
    """The agent's identity, created on first start (mode 0600, folder 0700)."""
    try:
        return load_identity(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes_raw()
    try:
        # O_EXCL: two agents starting together must not each write their own key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return load_identity(path)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fd, 0o600)  # whatever the umask was
        fh.write(raw)
        fh.flush()
        os.fsync(fd)
    return AgentIdentity(key)
