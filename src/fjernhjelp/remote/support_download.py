"""The one-time Support client, handed out: who may download it (the browser that joined
with a valid code, by its end-user cookie) and the build stamped with this server's URL and
signing key, cached once per key, URL and build."""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Outcome, record
from fjernhjelp.auth.tokens import token_hash
from fjernhjelp.control.package import fingerprint
from fjernhjelp.portal.models import Organisation
from fjernhjelp.refusals import Refusal
from fjernhjelp.remote.models import RemoteSession
from fjernhjelp.remote.support import END_USER, State, SupportConfig, state_of
from fjernhjelp.support.handover import Handover, handover_block
from fjernhjelp.support.stamp import stamp

if TYPE_CHECKING:
    from fjernhjelp.config import Settings

# ---- the one-time client: who may download it, and the stamped file -----------------------
#
# Here and not in fjernhjelp.support: that package is what ships to the end user inside
# the one-file build; the server's cache and its rules about sessions and tokens belong
# with the sessions they check (this module owns the end-user token and the states).

# What the end user's browser saves the file as.
CLIENT_FILE_NAME = "fjernhjelp-support"
# The checkout's dist/, where `make support-client` puts the build (src/fjernhjelp/remote/..).
DEFAULT_CLIENT_DIR = Path(__file__).resolve().parents[3] / "dist"
_STAMP_LOCK = threading.Lock()


class ClientRefused(Refusal):
    """No client for this request. ``reason`` (audited) says why; the answer is the same
    for every reason, so it does not tell whether a session id exists."""

    status = 404
    ANSWER: ClassVar[str] = "support.client_refused"

    @property
    def answer_reason(self) -> str:
        return self.ANSWER

    @property
    def sentence_key(self) -> str:
        return self.ANSWER


class ClientUnavailable(Refusal):
    """The server has no built client for this platform (`make support-client` not run)."""

    status = 503

    def __init__(self) -> None:
        super().__init__("support.client_unavailable")


def client_cookie(session_id: uuid.UUID) -> str:
    """The cookie that carries a session's end-user token in the end user's browser, one
    per session so that two joins in one browser do not overwrite each other."""
    return f"fjh_support_{session_id.hex}"


@dataclass(frozen=True)
class ClientBuild:
    """The generic client at ``generic`` made this server's own: stamped (support/stamp.py)
    with ``server_url`` and ``signing_key`` once, the result kept under ``cache_dir``.

    The cache is a file, not memory: the build is ~47 MB, every worker process would hold
    its own copy, and a file can be streamed. Its name carries the key's and URL's digest
    and the generic build's size and modification time, so a new key, URL or build makes
    a new file and the old ones are removed. Written 0600 to a temporary name and renamed,
    so no reader ever sees half a file, whichever worker stamps first."""

    generic: Path
    cache_dir: Path
    server_url: str
    signing_key: Ed25519PrivateKey

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.signing_key.public_key())

    @property
    def available(self) -> bool:
        return self.generic.is_file()

    def _prefix(self) -> str:
        public = self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        digest = hashlib.sha256(public + b"\x00" + self.server_url.encode()).hexdigest()[:24]
        return f"{self.generic.name}-{digest}-"

    def stamped(self) -> Path:
        """The stamped file's path, stamping it first if no cached copy matches."""
        try:
            info = self.generic.stat()
        except OSError as exc:
            raise ClientUnavailable() from exc
        prefix = self._prefix()
        cached = self.cache_dir / f"{prefix}{info.st_size}-{info.st_mtime_ns}"
        if cached.is_file():
            return cached
        with _STAMP_LOCK:
            if cached.is_file():  # another thread stamped it while we waited
                return cached
            self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            data = stamp(self.generic.read_bytes(), self.server_url, self.signing_key)
            fd, temporary = tempfile.mkstemp(prefix=".stamping-", dir=self.cache_dir)
            try:
                with os.fdopen(fd, "wb") as fh:  # mkstemp made it 0600
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(temporary, cached)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            for old in self.cache_dir.glob(f"{self.generic.name}-*"):
                if old != cached:
                    old.unlink(missing_ok=True)
        return cached


def client_build(settings: Settings, signing_key: Ed25519PrivateKey) -> ClientBuild:
    from fjernhjelp.support.build import target_name

    # The server serves the build for its own platform: the only one `make support-client`
    # makes today (a Windows or macOS client would add its name here).
    folder = settings.support_client_dir or DEFAULT_CLIENT_DIR
    return ClientBuild(
        generic=folder / target_name(),
        cache_dir=settings.data_dir / "support-client",
        server_url=settings.effective_public_url,
        signing_key=signing_key,
    )


def _client_refusal(reason: str) -> ClientRefused:
    refusal = ClientRefused(reason)
    refusal.recorded = True
    return refusal


@dataclass(frozen=True)
class ClientFile:
    """What a download sends: the stamped client (cached, the same for every session),
    then this session's block (support/handover.py), so that the client joins the
    session whose code the end user entered in the browser without the spent code."""

    stamped: Path
    handover: bytes


def client_download(
    db: Session,
    cfg: SupportConfig,
    build: ClientBuild,
    session_id: uuid.UUID,
    token: str | None,
    source_address: str | None,
    now: datetime,
) -> ClientFile:
    """The stamped client for the end user who joined ``session_id`` and holds its
    end-user ``token``: while the session is joined or running, and no longer than the
    code's lifetime after the join. Audited as ``support.client_downloaded`` either way
    (for the customer and the vendor when the session is real), a refusal marked recorded."""
    row = db.get(RemoteSession, session_id)
    if row is None or not row.is_support:
        row = None
    reason: str | None = None
    if row is None:
        reason = "unknown"
    elif (
        not token
        or row.end_user_token_hash is None
        or not hmac.compare_digest(token_hash(token), row.end_user_token_hash)
    ):
        reason = "not_joined"
    elif (state := state_of(row, now)) not in (State.JOINED, State.RUNNING):
        reason = state  # cancelled, ended, expired
    elif row.code_used_at is not None and now >= row.code_used_at + cfg.lifetime:
        reason = "expired"
    elif not build.available:
        reason = "unavailable"

    def audit(outcome: Outcome, why: str | None) -> None:
        record(
            db,
            "support.client_downloaded",
            outcome,
            actor=END_USER,
            reason=why,
            customer_org_id=row.customer_org_id if row is not None else None,
            vendor_org_id=row.vendor_org_id if row is not None else None,
            source_address=source_address,
            details={"session": str(session_id), "fingerprint": build.fingerprint},
        )

    if reason is not None:
        audit(Outcome.DENIED, reason)
        if reason == "unavailable":
            unavailable = ClientUnavailable()
            unavailable.recorded = True
            raise unavailable
        raise _client_refusal(reason)
    try:
        path = build.stamped()
    except ClientUnavailable as exc:  # removed between the check and now
        audit(Outcome.DENIED, "unavailable")
        exc.recorded = True
        raise
    audit(Outcome.SUCCESS, None)
    assert row is not None and token is not None
    vendor = db.get(Organisation, row.vendor_org_id)
    customer = db.get(Organisation, row.customer_org_id)
    handover = Handover(
        session_id=row.id,
        client_token=token,
        technician=row.technician.display_name,
        vendor=vendor.name if vendor else "",
        customer=customer.name if customer else "",
    )
    return ClientFile(path, handover_block(handover))
