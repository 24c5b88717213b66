"""The one-file agent installer for a package: ``fjernhjelp-agent-<group>.run``.

The server keeps only the enrolment token's hash, so it cannot make the file later from
what it stores. The page that shows a new package once therefore also posts that package
back (the browser holds it already) to have it appended to the generic one-file build
(``control.agent_file``). The service checks that the package is this server's, the one
the path names, whole (its token matches the stored hash), still usable, and one the
caller may manage; then it hands out the build with the package appended and signed.
Audited as ``package.executable_downloaded``, refusals included.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Outcome, record
from fjernhjelp.auth.tokens import token_hash
from fjernhjelp.caller import Caller
from fjernhjelp.control import agent_file
from fjernhjelp.control.package import PackageRejected, fingerprint, read_package
from fjernhjelp.machines.models import InstallerPackage
from fjernhjelp.machines.packages import may_revoke, state_of
from fjernhjelp.refusals import NotFound, PackageRefused, Refusal


class ExecutableUnavailable(Refusal):
    """The server has no one-file build for this platform (``make support-client``)."""

    status = 503

    def __init__(self) -> None:
        super().__init__("package.executable_unavailable")


@dataclass(frozen=True)
class AgentDownload:
    """What the download sends: the generic build (opened when checked, so a build
    replaced mid-download cannot change it), then ``block``."""

    executable: Path
    executable_size: int
    block: bytes
    file_name: str


_DIGESTS: dict[tuple[str, int, int], bytes] = {}
_DIGEST_LOCK = threading.Lock()
# Letters the NFKD decomposition does not reduce to ASCII.
_LETTERS = str.maketrans({"æ": "ae", "ø": "o", "å": "a", "Æ": "AE", "Ø": "O", "Å": "A"})


def file_name(group: str) -> str:
    """ASCII only and short: it is typed into a terminal on the customer's machine."""
    ascii_name = (
        unicodedata.normalize("NFKD", group.translate(_LETTERS)).encode("ascii", "ignore").decode()
    )
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40].strip("-")
    return f"fjernhjelp-agent-{slug or 'group'}.run"


def _digest(executable: Path) -> tuple[int, bytes]:
    """The build's length and SHA-256, hashed once per build (by size and mtime)."""
    info = executable.stat()
    key = (str(executable), info.st_size, info.st_mtime_ns)
    with _DIGEST_LOCK:
        known = _DIGESTS.get(key)
        if known is None:
            digest = hashlib.sha256()
            with executable.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            known = digest.digest()
            _DIGESTS.clear()
            _DIGESTS[key] = known
    return info.st_size, known


def executable_download(
    db: Session,
    caller: Caller,
    package_id: uuid.UUID,
    package_file: bytes,
    executable: Path,
    signing_key: Ed25519PrivateKey,
) -> AgentDownload:
    """The one file for the package ``package_id``, whose file the caller posts back."""
    row = db.get(InstallerPackage, package_id)
    if row is not None and not may_revoke(caller, row):
        row = None
    own = fingerprint(signing_key.public_key())
    reason: str | None = None
    refusal: Refusal | None = None
    if row is None:
        refusal = NotFound("package", package_id)
    elif state_of(db, row, caller.now) != "active":
        refusal = PackageRefused("package_not_usable")
    else:
        try:
            package = read_package(package_file, expected_fingerprint=own)
        except PackageRejected:
            package = None
        if (
            package is None
            or package.package_id != str(row.id)
            or not hmac.compare_digest(token_hash(package.enrolment_token), row.token_hash)
        ):
            refusal = PackageRefused("not_this_package")
        elif not executable.is_file():
            refusal = ExecutableUnavailable()
    details: dict[str, object] = {"package": str(package_id), "fingerprint": own}

    def audit(outcome: Outcome, why: str | None) -> None:
        record(
            db,
            "package.executable_downloaded",
            outcome,
            actor=caller.actor,
            reason=why,
            customer_org_id=row.organisation_id if row is not None else None,
            source_address=caller.source_address,
            details=details,
        )

    if refusal is not None:
        reason = refusal.reason
        audit(Outcome.DENIED, reason)
        refusal.recorded = True
        raise refusal
    assert row is not None
    size, digest = _digest(executable)
    block = agent_file.block(digest, size, package_file, signing_key)
    name = file_name(row.group.name)
    details |= {"group": str(row.group_id), "file": name}
    audit(Outcome.SUCCESS, None)
    return AgentDownload(executable, size, block, name)
