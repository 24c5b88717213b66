"""Forwarding committed audit events as syslog (RFC 5424 over UDP).

Only events whose transaction committed are sent: they are collected on the session
by audit.log.record() and flushed here after commit, dropped after rollback. Signed
checkpoints of the chain head (audit/checkpoint.py) travel the same way with the MSGID
``checkpoint``, so the SIEM holds copies that whoever owns the database cannot reach.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import socket
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from fjernhjelp.audit.checkpoint import checkpoint_as_dict
from fjernhjelp.audit.query import event_as_dict

_log = logging.getLogger(__name__)


class SyslogForwarder:
    def __init__(self, target: str, app_name: str = "fjernhjelp") -> None:
        host, _, port = target.rpartition(":")
        self._address = (host.strip("[]"), int(port))
        family = socket.AF_INET6 if ":" in self._address[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._app = app_name
        self._hostname = socket.gethostname()

    def send(self, payload: dict[str, Any], msgid: str = "audit") -> None:
        # PRI 110 = facility 13 (log audit) * 8 + severity 6 (informational).
        stamp = payload.get("occurred_at") or payload.get("signed_at")
        message = f"<110>1 {stamp} {self._hostname} {self._app} - {msgid} - " + json.dumps(
            payload, ensure_ascii=False, separators=(",", ":")
        )
        try:
            self._sock.sendto(message.encode(), self._address)
        except OSError as exc:  # a syslog outage must not stop the service
            _log.warning("audit syslog forwarding failed: %s", exc)

    def close(self) -> None:
        self._sock.close()


def install(
    factory: sessionmaker[Session], forwarder: SyslogForwarder, server_key_fingerprint: str = ""
) -> None:
    factory.configure(info={"audit_forwarding": True})

    @event.listens_for(factory, "after_commit")
    def _after_commit(session: Session) -> None:
        if session.in_nested_transaction():
            # A released SAVEPOINT (a service auditing its refusals runs in one) is
            # signalled as a commit too; nothing is committed until the outermost is.
            return
        for ev in session.info.pop("audit_pending", []):
            forwarder.send(event_as_dict(ev))
        for checkpoint in session.info.pop("checkpoints_pending", []):
            payload = checkpoint_as_dict(checkpoint)
            payload["server_key_fingerprint"] = server_key_fingerprint
            forwarder.send(payload, msgid="checkpoint")

    @event.listens_for(factory, "after_soft_rollback")
    def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
        if previous_transaction.nested:
            # Back to a SAVEPOINT: only the events added since are gone (no longer in the
            # session); those before it still commit with the outer transaction.
            # (Checkpoints are signed at the top level, never inside a savepoint.)
            if "audit_pending" in session.info:
                pending = session.info["audit_pending"]
                session.info["audit_pending"] = [ev for ev in pending if ev in session]
            return
        session.info.pop("audit_pending", None)
        session.info.pop("checkpoints_pending", None)
