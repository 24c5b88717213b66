"""The login flow as an attacker and a user see it, on each database backend."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.auth import login, totp, yubico
from fjernhjelp.auth.factors import add_yubikey
from fjernhjelp.auth.logins import ClientInfo
from fjernhjelp.auth.models import LoginSession, UserStatus
from fjernhjelp.server.state import AppState
from tests.helpers import PASSWORD, Account, make_org, make_user

CLIENT = ClientInfo("192.0.2.10", "pytest")


@pytest.fixture
def tech(db, state: AppState) -> Account:
    org = make_org(db, "Leverandør AS", gives=True, receives=False)
    account = make_user(db, state, org, "tekniker")
    db.commit()
    return account


def events(db, action: str) -> list[AuditEvent]:
    db.rollback()
    db.expire_all()
    return list(
        db.execute(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        ).scalars()
    )


def full_login(db, state: AppState, account: Account, code: str) -> login.Started:
    started = login.begin(db, state.login, account.username, account.password, CLIENT, state.now())
    db.commit()
    done = login.finish(db, state.login, started.token, code, CLIENT, state.now())
    db.commit()
    return done


def test_password_then_totp_gives_a_session(db, state, tech) -> None:
    done = full_login(db, state, tech, tech.code())
    assert done.session.stage == "complete" and done.session.factor_kind == "totp"
    ok = events(db, "auth.login.factor")[-1]
    assert ok.outcome == "success" and ok.factor == "totp" and ok.source_address == "192.0.2.10"


def test_unknown_user_and_wrong_password_look_the_same(db, state, tech) -> None:
    answers = []
    for username, password in (("tekniker", "wrong password!"), ("nobody-here", PASSWORD)):
        with pytest.raises(login.LoginRefused) as info:
            login.begin(db, state.login, username, password, CLIENT, state.now())
        db.commit()
        answers.append((type(info.value), info.value.message))
    assert answers[0] == answers[1] == (login.BadCredentials, "login.bad_credentials")
    reasons = [e.reason for e in events(db, "auth.login.password")]
    assert reasons == ["wrong_password", "unknown_user"]


def test_replayed_totp_code_is_refused_and_audited(db, state, tech) -> None:
    code = tech.code()
    full_login(db, state, tech, code)
    started = login.begin(db, state.login, tech.username, tech.password, CLIENT, state.now())
    db.commit()
    with pytest.raises(login.FactorRefused) as info:
        login.finish(db, state.login, started.token, code, CLIENT, state.now())
    db.commit()
    assert info.value.reason == "replayed_code"
    last = events(db, "auth.login.factor")[-1]
    assert (last.outcome, last.reason) == ("failure", "replayed_code")
    # An older code inside the drift window is also refused once a newer one was used.
    with pytest.raises(login.FactorRefused):
        login.finish(db, state.login, started.token, tech.code(-1), CLIENT, state.now())


def test_the_same_code_raced_twice_wins_once(db, state, tech) -> None:
    pending = []
    for _ in range(2):
        pending.append(
            login.begin(db, state.login, tech.username, tech.password, CLIENT, state.now()).token
        )
        db.commit()
    code = tech.code()

    def attempt(token: str) -> str:
        with state.db_sessions() as other:
            try:
                login.finish(other, state.login, token, code, CLIENT, state.now())
                return "ok"
            except login.FactorRefused as exc:
                return exc.reason
            finally:
                other.commit()

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(attempt, pending))
    assert outcomes == ["ok", "replayed_code"]


def _yubikey(db, state, account: Account) -> tuple[bytes, bytes, str]:
    key, pid = bytes(range(16)), bytes.fromhex("a1b2c3d4e5f6")
    public = "vvccccdfhijk"

    def otp(counter: int, use: int) -> str:
        token = yubico.Token(pid, counter, 0x1234, use, 0x4242)
        return public + yubico.encrypt_token(key, token)

    add_yubikey(db, state.keys.at_rest, account.user, "YubiKey", key, pid, otp(1, 0))
    db.commit()
    return key, pid, public, otp  # type: ignore[return-value]


def test_yubico_replay_and_out_of_order_are_refused(db, state, tech) -> None:
    *_, otp = _yubikey(db, state, tech)
    full_login(db, state, tech, otp(3, 2))
    for stale, why in (
        (otp(3, 2), "replay"),
        (otp(3, 1), "older use"),
        (otp(2, 9), "older counter"),
    ):
        started = login.begin(db, state.login, tech.username, tech.password, CLIENT, state.now())
        db.commit()
        with pytest.raises(login.FactorRefused) as info:
            login.finish(db, state.login, started.token, stale, CLIENT, state.now())
        db.commit()
        assert info.value.reason == "replayed_code", why
    assert [e.factor for e in events(db, "auth.login.factor")[-3:]] == ["yubico"] * 3
    # The next touch of the key (higher use) still works.
    full_login(db, state, tech, otp(3, 3))


def test_yubikey_of_someone_else_is_unknown(db, state, tech) -> None:
    *_, otp = _yubikey(db, state, tech)
    org = tech.user.organisation
    other = make_user(db, state, org, "kollega")
    db.commit()
    started = login.begin(db, state.login, other.username, other.password, CLIENT, state.now())
    db.commit()
    with pytest.raises(login.FactorRefused) as info:
        login.finish(db, state.login, started.token, otp(5, 0), CLIENT, state.now())
    assert info.value.reason == "unknown_key"


def test_lockout_after_repeated_failures_with_back_off(db, state, tech, clock) -> None:
    rule = state.login.account_rule
    for _ in range(rule.failures_before_lockout):
        with pytest.raises(login.BadCredentials):
            login.begin(db, state.login, tech.username, "not the password", CLIENT, state.now())
        db.commit()
    # Now even the right password is refused until the lockout ends.
    with pytest.raises(login.LockedOut) as info:
        login.begin(db, state.login, tech.username, tech.password, CLIENT, state.now())
    db.commit()
    assert 0 < info.value.retry_after <= rule.base_seconds
    lockouts = events(db, "auth.lockout")
    assert lockouts and lockouts[-1].reason == "account_failures"
    assert events(db, "auth.login.password")[-1].reason == "locked"

    clock.advance(seconds=rule.base_seconds + 1)
    with pytest.raises(login.BadCredentials):  # one more failure: the wait doubles
        login.begin(db, state.login, tech.username, "still wrong", CLIENT, state.now())
    db.commit()
    with pytest.raises(login.LockedOut) as info:
        login.begin(db, state.login, tech.username, tech.password, CLIENT, state.now())
    db.commit()
    assert rule.base_seconds < info.value.retry_after <= 2 * rule.base_seconds

    clock.advance(seconds=2 * rule.base_seconds + 1)
    started = login.begin(db, state.login, tech.username, tech.password, CLIENT, state.now())
    db.commit()
    assert started.session.stage == "password_ok"


def test_unknown_names_lock_out_like_real_ones(db, state) -> None:
    rule = state.login.account_rule
    for _ in range(rule.failures_before_lockout):
        with pytest.raises(login.BadCredentials):
            login.begin(db, state.login, "ghost", "whatever", CLIENT, state.now())
        db.commit()
    with pytest.raises(login.LockedOut):
        login.begin(db, state.login, "ghost", "whatever", CLIENT, state.now())


def test_guessing_factor_codes_locks_the_account(db, state, tech) -> None:
    started = login.begin(db, state.login, tech.username, tech.password, CLIENT, state.now())
    db.commit()
    good = tech.code()
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    for _ in range(state.login.account_rule.failures_before_lockout):
        with pytest.raises(login.FactorRefused):
            login.finish(db, state.login, started.token, wrong, CLIENT, state.now())
        db.commit()
    with pytest.raises(login.LockedOut):
        login.finish(db, state.login, started.token, good, CLIENT, state.now())


def test_disabled_user_and_suspended_organisation_cannot_log_in(db, state, tech) -> None:
    tech.user.status = UserStatus.SUSPENDED
    db.commit()
    with pytest.raises(login.AccountUnavailable) as info:
        login.begin(db, state.login, tech.username, tech.password, CLIENT, state.now())
    db.commit()
    assert info.value.reason == "user_suspended"
    tech.user.status = UserStatus.ACTIVE
    tech.user.organisation.status = "suspended"
    db.commit()
    with pytest.raises(login.AccountUnavailable) as info:
        login.begin(db, state.login, tech.username, tech.password, CLIENT, state.now())
    assert info.value.reason == "organisation_suspended"


def test_account_without_factor_cannot_finish_login(db, state) -> None:
    org = make_org(db)
    bare = make_user(db, state, org, "utenfaktor", with_totp=False)
    db.commit()
    with pytest.raises(login.AccountUnavailable) as info:
        login.begin(db, state.login, bare.username, bare.password, CLIENT, state.now())
    assert info.value.reason == "no_factor"


def test_pending_login_expires(db, state, tech, clock) -> None:
    started = login.begin(db, state.login, tech.username, tech.password, CLIENT, state.now())
    db.commit()
    clock.advance(minutes=state.settings.login_pending_minutes, seconds=1)
    with pytest.raises(login.LoginExpired):
        login.finish(db, state.login, started.token, tech.code(), CLIENT, state.now())


def test_no_secret_reaches_the_audit_log(db, state, tech) -> None:
    code = tech.code()
    full_login(db, state, tech, code)
    with pytest.raises(login.BadCredentials):
        login.begin(db, state.login, tech.username, "Hemmelig-passord-123", CLIENT, state.now())
    db.commit()
    dump = json.dumps(
        [e.details for e in events(db, "auth.login.password")]
        + [e.details for e in events(db, "auth.login.factor")]
    )
    for secret in (tech.password, "Hemmelig-passord-123", code, tech.totp_secret):
        assert secret not in dump
    sessions = db.execute(select(LoginSession)).scalars().all()
    assert sessions and all(len(s.token_hash) == 32 for s in sessions)
    assert totp.step_at(0) == 0
