"""The one-file agent installer: the generic one-file build with an installer package appended.

The portal offers, next to the package file, ``fjernhjelp-agent-<group>.run``: the same
generic executable the Support client is made from (``make support-client``), with the
signed installer package (``control.package``) appended when it is downloaded, so the
server never builds anything. The executable picks its role from what it carries
(``agent.onefile``); ELF loaders and PyInstaller's bootloader ignore the appended bytes,
as they do a Support stamp (``support.stamp``).

A downloaded file, byte for byte (integers unsigned, big-endian)::

    offset 0         B bytes   the generic executable, unchanged
    offset B         P bytes   the installer package file, exactly as the portal made it
    offset B+P       64 bytes  Ed25519 signature by the package's server key over
                               CONTEXT || SHA-256(executable) || package
    offset B+P+64    32 bytes  trailer:
                                 8  B, the executable's length
                                 4  P, the package's length (1..MAX_PACKAGE)
                                 2  VERSION (1)
                                 2  zero
                                16  MAGIC, b"fjernhjelp-agent"

Two signatures by the same key: the package's own (which ``read_package`` checks, as
``fjernhjelp agent install`` does, against the key the package carries) and the outer one,
which binds that package to this very build, so a package cut from one download and pasted
onto another build (an older one with a known flaw, say) is refused. Neither makes the key
the *right* one: that comes from the fingerprint the installer shows and the admin
confirms (or ``--expect-fingerprint``), as for the package file.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fjernhjelp.control.package import (
    MAX_PACKAGE,
    InstallerPackage,
    PackageRejected,
    read_package,
)

MAGIC = b"fjernhjelp-agent"
VERSION = 1
CONTEXT = b"fjernhjelp agent one-file v1\x00"
TRAILER = struct.Struct(">QIHH16s")  # executable length, package length, version, zero, magic
SIGNATURE_SIZE = 64


class AgentFileRefused(Exception):
    """The file carries no usable package; ``reason`` is machine-readable, ``message`` says
    why in words a customer admin can act on."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class AgentFile:
    """A checked download: the package it carries and where the executable ends in it."""

    package: InstallerPackage
    executable_size: int


def block(executable_sha256: bytes, executable_size: int, package_file: bytes,
          signing_key: Ed25519PrivateKey) -> bytes:  # fmt: skip
    """What the server appends to the generic executable (whose digest and length are
    given, so a cached digest spares hashing the build for every download)."""
    if not 0 < len(package_file) <= MAX_PACKAGE:
        raise ValueError("not an installer package")
    signature = signing_key.sign(CONTEXT + executable_sha256 + package_file)
    trailer = TRAILER.pack(executable_size, len(package_file), VERSION, 0, MAGIC)
    return package_file + signature + trailer


def attach(executable: bytes, package_file: bytes, signing_key: Ed25519PrivateKey) -> bytes:
    """The executable with the package appended (tests and tools; the server streams)."""
    digest = hashlib.sha256(executable).digest()
    return executable + block(digest, len(executable), package_file, signing_key)


def carries_package(path: str | os.PathLike[str]) -> bool:
    """Whether the file ends with this format's trailer (whole or not is for ``read``)."""
    with Path(path).open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size < len(MAGIC):
            return False
        fh.seek(size - len(MAGIC))
        return fh.read(len(MAGIC)) == MAGIC


def read_agent_file(
    path: str | os.PathLike[str], *, expected_fingerprint: str | None = None
) -> AgentFile:
    """The package the file at ``path`` carries, checked as ``agent install`` checks a
    package file and bound to this executable; raises AgentFileRefused saying why not."""
    with Path(path).open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size < TRAILER.size + SIGNATURE_SIZE:
            raise AgentFileRefused("missing", "the file is too short to carry a package")
        fh.seek(size - TRAILER.size)
        exe_size, package_size, version, zero, magic = TRAILER.unpack(fh.read(TRAILER.size))
        if magic != MAGIC:
            raise AgentFileRefused(
                "missing",
                "the file carries no installer package (cut short, or not downloaded "
                "from the portal's package page)",
            )
        if version != VERSION or zero != 0:
            raise AgentFileRefused("version", f"format version {version} is not {VERSION}")
        if not 0 < package_size <= MAX_PACKAGE or (
            exe_size + package_size + SIGNATURE_SIZE + TRAILER.size != size
        ):
            raise AgentFileRefused("altered", "the package's lengths do not match the file")
        fh.seek(0)
        digest = hashlib.sha256()
        remaining = exe_size
        while remaining:
            chunk = fh.read(min(remaining, 1 << 20))
            if not chunk:
                raise AgentFileRefused("altered", "the file ended early")
            digest.update(chunk)
            remaining -= len(chunk)
        package_file = fh.read(package_size)
        signature = fh.read(SIGNATURE_SIZE)
    try:
        package = read_package(package_file, expected_fingerprint=expected_fingerprint)
    except PackageRejected as exc:
        if exc.reason in ("fingerprint", "expired"):
            raise AgentFileRefused(exc.reason, exc.message) from exc
        raise AgentFileRefused("altered", f"the package inside was altered: {exc.message}") from exc
    try:
        Ed25519PublicKey.from_public_bytes(package.server_public_key).verify(
            signature, CONTEXT + digest.digest() + package_file
        )
    except InvalidSignature as exc:
        raise AgentFileRefused(
            "altered", "the package's signature does not match this program file"
        ) from exc
    return AgentFile(package=package, executable_size=exe_size)
