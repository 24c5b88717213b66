"""Every message the portal can show exists in the catalogue, in both languages."""

from __future__ import annotations

import re
from pathlib import Path

from fjernhjelp.i18n import catalogue
from fjernhjelp.portal.access import DenyReason
from fjernhjelp.portal.models import AgreementKind, Audience, OrgKind, Permission

PORTAL = Path(__file__).parents[2] / "src" / "fjernhjelp" / "portal"


def _sources() -> str:
    return "\n".join(p.read_text() for p in PORTAL.rglob("*.py"))


def test_every_refusal_key_exists() -> None:
    keys = set(re.findall(r'(?:PortalError|Conflict)\(\s*"([a-z_.]+)"', _sources()))
    keys |= {f"terms.accept_{a.value}_first" for a in Audience}
    keys |= {"account.bad_username", "account.bad_email", "account.username_taken"}
    assert len(keys) > 40
    assert sorted(k for k in keys if k not in catalogue()) == []


def test_every_notice_kind_exists() -> None:
    kinds = set(re.findall(r'notify\(\s*[^,]+,\s*[^,]+,\s*"([a-z_]+)"', _sources(), re.S))
    assert {"grant_revoked", "user_deactivated_inactive"} <= kinds
    assert sorted(k for k in kinds if f"notification.{k}" not in catalogue()) == []


def test_every_enumerated_value_has_a_text() -> None:
    wanted = (
        [f"access.reason.{r.value}" for r in DenyReason]
        + [f"permission.{p.value}" for p in Permission]
        + [f"agreement.kinds.{k.value}" for k in AgreementKind]
        + [f"terms.audiences.{a.value}" for a in Audience]
        + [f"org.kind.{k.value}" for k in OrgKind]
        + [
            f"status.{s}"
            for s in (
                "active",
                "pending",
                "disabled",
                "suspended",
                "revoked",
                "expired",
                "not_yet_valid",
                "agreement_ended",
            )
        ]
    )
    assert [k for k in wanted if k not in catalogue()] == []
