"""The person's own factors and password (auth/self_service.py), called as the account
page calls them: what each allows, what it refuses and why, and what it audits."""

from __future__ import annotations

import json
import time

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.auth import logins, self_service, totp, yubico
from fjernhjelp.auth.models import Factor, LoginSession, SessionKind, SessionStage, User
from fjernhjelp.auth.self_service import FactorNotFound, FactorRefused, LastFactorKept
from fjernhjelp.caller import Caller
from fjernhjelp.refusals import NotAllowed
from fjernhjelp.server.state import AppState
from tests.helpers import Account, make_org, make_user

AES = bytes(range(16))
PRIVATE_ID = bytes.fromhex("0a0b0c0d0e0f")
PUBLIC_ID = "cccjgjgkhcbb"
ADDRESS = "192.0.2.44"


def _otp(counter: int, use: int, aes: bytes = AES) -> str:
    return PUBLIC_ID + yubico.encrypt_token(aes, yubico.Token(PRIVATE_ID, counter, 1, use, 7))


def _events(db: Session, action: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
    return list(db.execute(query).scalars())


def _as(account: Account, state: AppState) -> Caller:
    return Caller.of_person(account.user, state.now(), ADDRESS)


@pytest.fixture
def tech(db: Session, state: AppState) -> Account:
    account = make_user(db, state, make_org(db), "tekniker")
    db.commit()
    return account


@pytest.fixture
def colleague(db: Session, state: AppState, tech: Account) -> Account:
    account = make_user(db, state, tech.user.organisation, "kollega")
    db.commit()
    return account


def _yubikey(db: Session, state: AppState, account: Account, otp: str, **secret: str) -> Factor:
    return self_service.add_yubikey(
        db,
        _as(account, state),
        state.keys.at_rest,
        label=" Nøkkel ",
        aes_key_hex=secret.get("aes", AES.hex()),
        private_id_hex=secret.get("private_id", PRIVATE_ID.hex()),
        otp=otp,
    )


# -- TOTP --------------------------------------------------------------------------


def test_a_totp_factor_counts_once_a_code_confirms_it(db, state, tech) -> None:
    person = _as(tech, state)
    pending = self_service.start_totp(db, person, state.keys.at_rest, "  ")
    assert pending.factor.label == "TOTP" and not pending.factor.confirmed
    factor = self_service.confirm_totp(
        db, person, state.keys.at_rest, pending.factor.id, pyotp.TOTP(pending.secret).now()
    )
    db.commit()
    assert factor.confirmed and len(tech.user.confirmed_factors) == 2
    (added,) = _events(db, "account.factor.added")
    assert (added.outcome, added.factor, added.source_address) == ("success", "totp", ADDRESS)
    assert added.customer_org_id == tech.user.organisation_id
    assert json.loads(added.details) == {"factor": str(factor.id), "label": "TOTP"}


def test_a_wrong_totp_code_is_audited_and_leaves_the_factor_pending(db, state, tech) -> None:
    person = _as(tech, state)
    pending = self_service.start_totp(db, person, state.keys.at_rest, "Nettbrett")
    # A six-digit code the app shows at no step near now (the check uses the real clock).
    step = totp.step_at(time.time())
    near = {totp.code_at_step(pending.secret, s) for s in range(step - 3, step + 4)}
    wrong = next(c for c in ("000000", "000001", "000002", "999999") if c not in near)
    with pytest.raises(FactorRefused) as refused:
        self_service.confirm_totp(db, person, state.keys.at_rest, pending.factor.id, wrong)
    db.commit()
    assert (refused.value.reason, refused.value.status) == ("factor.wrong_code", 422)
    (failed,) = _events(db, "account.factor.added")
    assert (failed.outcome, failed.reason, failed.factor) == ("failure", "wrong_code", "totp")
    again = self_service.pending_totp(db, person, state.keys.at_rest, pending.factor.id)
    assert again.secret == pending.secret and not again.factor.confirmed


def test_someone_elses_or_a_confirmed_factor_has_nothing_to_confirm(
    db, state, tech, colleague
) -> None:
    theirs = self_service.start_totp(db, _as(colleague, state), state.keys.at_rest, "Deres")
    db.commit()
    mine_confirmed = tech.user.confirmed_factors[0]
    for factor_id in (theirs.factor.id, mine_confirmed.id):
        with pytest.raises(FactorNotFound) as refused:
            self_service.confirm_totp(
                db, _as(tech, state), state.keys.at_rest, factor_id, pyotp.TOTP(theirs.secret).now()
            )
        assert (refused.value.reason, refused.value.status) == ("factor.not_found", 404)
    db.commit()
    db.expire_all()
    assert not db.get(Factor, theirs.factor.id).confirmed
    assert _events(db, "account.factor.added") == []


# -- YubiKey -----------------------------------------------------------------------


def test_a_yubikey_is_enrolled_from_its_hex_secrets_and_one_otp(db, state, tech) -> None:
    factor = _yubikey(
        db, state, tech, _otp(1, 0), aes=" ".join(AES.hex()[i : i + 8] for i in range(0, 32, 8))
    )
    db.commit()
    assert (factor.kind, factor.label, factor.public_id) == ("yubico", "Nøkkel", PUBLIC_ID)
    (added,) = _events(db, "account.factor.added")
    assert (added.outcome, added.factor) == ("success", "yubico")
    assert json.loads(added.details) == {
        "factor": str(factor.id),
        "label": "Nøkkel",
        "public_id": PUBLIC_ID,
    }


def test_a_yubikey_already_enrolled_is_refused_for_anyone(db, state, tech, colleague) -> None:
    _yubikey(db, state, tech, _otp(1, 0))
    db.commit()
    for account in (tech, colleague):
        with pytest.raises(FactorRefused) as refused:
            _yubikey(db, state, account, _otp(2, 0))
        assert refused.value.reason == "factor.yubikey_taken"
    assert len(db.execute(select(Factor).where(Factor.kind == "yubico")).all()) == 1


@pytest.mark.parametrize(
    ("aes", "private_id"),
    [("zz" * 16, PRIVATE_ID.hex()), (AES.hex()[:-2], PRIVATE_ID.hex()), (AES.hex(), "0a0b")],
)
def test_yubikey_secrets_that_are_not_hex_of_the_right_size_are_refused(
    db, state, tech, aes, private_id
) -> None:
    with pytest.raises(FactorRefused) as refused:
        _yubikey(db, state, tech, _otp(1, 0), aes=aes, private_id=private_id)
    assert (refused.value.reason, refused.value.status) == ("factor.yubikey_bad_secret", 422)
    db.commit()
    assert _events(db, "account.factor.added") == []


def test_an_otp_the_secrets_do_not_explain_is_audited_and_stores_nothing(db, state, tech) -> None:
    with pytest.raises(FactorRefused) as refused:
        _yubikey(db, state, tech, _otp(1, 0, aes=bytes(16)))
    db.commit()
    assert refused.value.reason == "factor.yubikey_rejected"
    (failed,) = _events(db, "account.factor.added")
    assert (failed.outcome, failed.reason, failed.factor) == ("failure", "malformed_otp", "yubico")
    assert failed.source_address == ADDRESS
    assert db.execute(select(Factor).where(Factor.kind == "yubico")).first() is None


def test_parse_secret_takes_the_personalisation_tools_hex() -> None:
    assert yubico.parse_secret(AES.hex().upper(), "0a 0b 0c 0d 0e 0f") == (AES, PRIVATE_ID)
    for aes, private_id in (("", ""), (AES.hex() + "00", PRIVATE_ID.hex()), ("g" * 32, "0" * 12)):
        with pytest.raises(yubico.YubicoSecretError):
            yubico.parse_secret(aes, private_id)
    assert yubico.public_id_of(" " + _otp(1, 0).upper() + "\n") == PUBLIC_ID


# -- removing ----------------------------------------------------------------------


def test_someone_elses_factor_cannot_be_removed(db, state, tech, colleague) -> None:
    theirs = colleague.user.factors[0].id
    with pytest.raises(FactorNotFound):
        self_service.remove_factor(db, _as(tech, state), theirs)
    db.commit()
    db.expire_all()
    assert db.get(Factor, theirs) is not None
    assert _events(db, "account.factor.removed") == []


def test_the_last_confirmed_factor_stays_while_a_role_needs_one(db, state, tech) -> None:
    only = tech.user.confirmed_factors[0].id
    # An unconfirmed factor does not count as a second one, and may itself go.
    pending = self_service.start_totp(db, _as(tech, state), state.keys.at_rest, "Uferdig")
    with pytest.raises(LastFactorKept) as refused:
        self_service.remove_factor(db, _as(tech, state), only)
    assert (refused.value.reason, refused.value.status) == ("factor.last_one", 409)
    self_service.remove_factor(db, _as(tech, state), pending.factor.id)
    db.commit()
    db.expire_all()
    assert [f.id for f in db.get(User, tech.user.id).factors] == [only]


def test_a_factor_is_removed_when_another_remains(db, state, tech) -> None:
    _yubikey(db, state, tech, _otp(1, 0))
    phone_id = next(f.id for f in tech.user.factors if f.kind == "totp")
    self_service.remove_factor(db, _as(tech, state), phone_id)
    db.commit()
    db.expire_all()
    assert db.get(Factor, phone_id) is None
    (removed,) = _events(db, "account.factor.removed")
    assert (removed.outcome, removed.customer_org_id) == ("success", tech.user.organisation_id)
    assert json.loads(removed.details) == {
        "factor": str(phone_id),
        "label": "phone",
        "kind": "totp",
    }


def test_an_account_without_roles_may_remove_its_last_factor(db, state) -> None:
    reader = make_user(db, state, make_org(db), "leser", technician=False)
    db.commit()
    self_service.remove_factor(db, _as(reader, state), reader.user.factors[0].id)
    db.commit()
    db.expire_all()
    assert db.get(User, reader.user.id).factors == []


def test_only_a_person_has_own_factors(db, state, tech) -> None:
    with pytest.raises(NotAllowed):
        self_service.remove_factor(db, Caller.system(state.now()), tech.user.factors[0].id)


# -- password ----------------------------------------------------------------------


def _login(db: Session, state: AppState, account: Account) -> LoginSession:
    _, row = logins.create(
        db,
        account.user,
        kind=SessionKind.BROWSER,
        stage=SessionStage.COMPLETE,
        client=logins.ClientInfo(ADDRESS),
        policy=state.login.policy,
        now=state.now(),
    )
    db.flush()
    return row


def _change(
    db: Session, state: AppState, account: Account, current: str, new: str, **kw: object
) -> int:
    return self_service.change_password(
        db,
        _as(account, state),
        state.login.passwords,
        current=current,
        new=new,
        new_again=str(kw.get("new_again", new)),
        min_length=state.settings.password_min_length,
        keep_session=kw.get("keep"),  # type: ignore[arg-type]
    )


def test_a_wrong_current_password_is_audited_and_changes_nothing(db, state, tech) -> None:
    before = tech.user.password_hash
    with pytest.raises(self_service.PasswordRefused) as refused:
        _change(db, state, tech, "not my password", "Nytt og langt passord 9")
    db.commit()
    assert refused.value.reason == "password.wrong_current"
    assert refused.value.problems == ("password.wrong_current",)
    (failed,) = _events(db, "account.password.changed")
    assert (failed.outcome, failed.reason, failed.source_address) == (
        "failure",
        "wrong_password",
        ADDRESS,
    )
    db.expire_all()
    assert db.get(User, tech.user.id).password_hash == before


def test_a_weak_or_mistyped_new_password_names_every_problem(db, state, tech) -> None:
    with pytest.raises(self_service.PasswordRefused) as refused:
        _change(db, state, tech, tech.password, "password123", new_again="password124")
    assert "password.too_common" in refused.value.problems
    assert refused.value.problems[-1] == "password.mismatch"
    assert refused.value.reason == refused.value.problems[0]
    db.commit()
    assert _events(db, "account.password.changed") == []


def test_a_new_password_ends_every_other_login(db, state, tech) -> None:
    here, _laptop, _phone = (_login(db, state, tech) for _ in range(3))
    db.commit()
    ended = _change(db, state, tech, tech.password, "Nytt og langt passord 9", keep=here.id)
    db.commit()
    assert ended == 2
    remaining = db.execute(select(LoginSession.id).where(LoginSession.user_id == tech.user.id))
    assert set(remaining.scalars()) == {here.id}
    db.expire_all()
    user = db.get(User, tech.user.id)
    assert state.login.passwords.verify(user.password_hash, "Nytt og langt passord 9")
    (changed,) = _events(db, "account.password.changed")
    assert changed.outcome == "success"
    assert json.loads(changed.details) == {"other_sessions_ended": 2}
