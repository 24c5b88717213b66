"""The one-file agent installer: the generic one-file build with an installer package appended.

The portal offers, next to the package file, ``fjernhjelp-agent-<group>.run``: the same
generic executable the Support client is made from (``make support-client``), with the
signed installer package (``control.package``) appended when it is downloaded, so the
server never builds anything. The executable picks its role from what it carries
(``agent.onefile``); ELF loaders and PyInstaller's bootloader ignore the appended bytes,
as they do a Support stamp (``support.stamp``).

A downloaded file is the generic executable followed by a signed block as
``control.appended`` lays it out: the payload is the installer package file, exactly as
the portal made it (1..MAX_PACKAGE bytes), signed by the package's server key; MAGIC is
b"fjernhjelp-agent".

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fjernhjelp.control import appended
from fjernhjelp.control.appended import SIGNATURE_SIZE as SIGNATURE_SIZE  # named here for tests
from fjernhjelp.control.appended import TRAILER as TRAILER
from fjernhjelp.control.appended import VERSION
from fjernhjelp.control.package import (
    MAX_PACKAGE,
    InstallerPackage,
    PackageRejected,
    read_package,
)

MAGIC = b"fjernhjelp-agent"
CONTEXT = b"fjernhjelp agent one-file v1\x00"
FORMAT = appended.Format(magic=MAGIC, context=CONTEXT, max_payload=MAX_PACKAGE)


class AgentFileRefused(appended.Refused):
    """The file carries no usable package; the message is for a customer admin."""


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
    return FORMAT.seal(executable_sha256, executable_size, package_file, signing_key)


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


# How each way the layout can fail reads to a customer admin.
_UNREADABLE: Mapping[appended.Fault, tuple[str, str]] = {
    appended.Fault.SHORT: ("missing", "the file is too short to carry a package"),
    appended.Fault.NO_MAGIC: (
        "missing",
        "the file carries no installer package (cut short, or not downloaded "
        "from the portal's package page)",
    ),
    appended.Fault.VERSION: ("version", "format version {version} is not " + str(VERSION)),
    appended.Fault.LENGTHS: ("altered", "the package's lengths do not match the file"),
    appended.Fault.ENDED_EARLY: ("altered", "the file ended early"),
}


def read_agent_file(
    path: str | os.PathLike[str], *, expected_fingerprint: str | None = None
) -> AgentFile:
    """The package the file at ``path`` carries, checked as ``agent install`` checks a
    package file and bound to this executable; raises AgentFileRefused saying why not."""
    with Path(path).open("rb") as fh:
        try:
            found = FORMAT.read(fh, fh.seek(0, os.SEEK_END))
        except appended.Unreadable as exc:
            reason, message = _UNREADABLE[exc.fault]
            raise AgentFileRefused(reason, message.format(version=exc.version)) from exc
    try:
        package = read_package(found.payload, expected_fingerprint=expected_fingerprint)
    except PackageRejected as exc:
        if exc.reason in ("fingerprint", "expired"):
            raise AgentFileRefused(exc.reason, exc.message) from exc
        raise AgentFileRefused("altered", f"the package inside was altered: {exc.message}") from exc
    if not FORMAT.signed_by(found, package.server_public_key):
        raise AgentFileRefused(
            "altered", "the package's signature does not match this program file"
        )
    return AgentFile(package=package, executable_size=found.executable_size)
