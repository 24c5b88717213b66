"""Two joins with one code, at the same moment on two database connections: exactly one
wins. The check that decides is the UPDATE that spends the code (WHERE code_used_at IS
NULL, row count checked), not what either request read before."""

from __future__ import annotations

import threading

import pytest

from fjernhjelp.remote import support
from fjernhjelp.remote.models import SessionStatus
from tests.portal.world import World
from tests.support.kit import config, events, make_code, row


def test_two_joins_with_one_code_succeed_once(backend, world: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    if backend.name != "postgresql":
        pytest.skip("SQLite takes the write lock at BEGIN: the joins cannot overlap")
    created = make_code(world)
    both_checked = threading.Barrier(2, timeout=60)
    checked = support._wrong_with

    def check_then_wait(row, db, now):  # type: ignore[no-untyped-def]
        wrong = checked(row, db, now)
        both_checked.wait()  # both have found the code unused before either spends it
        return wrong

    monkeypatch.setattr(support, "_wrong_with", check_then_wait)
    outcome: dict[str, str] = {}
    cfg = config(world.state)

    def attempt(address: str) -> None:
        with world.state.db_sessions() as db:
            try:
                joined = support.join(db, cfg, created.code, address, world.state.now())
                db.commit()
                outcome[address] = "joined:" + joined.customer
            except support.CodeInvalid as exc:
                db.commit()  # the refusal's event and counters, as the request keeps them
                outcome[address] = exc.reason

    addresses = ("203.0.113.1", "203.0.113.2")
    threads = [threading.Thread(target=attempt, args=(a,)) for a in addresses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcome.values()) == ["joined:Legekontoret Fjordbyen", "used"], outcome
    [winner] = [a for a, result in outcome.items() if result.startswith("joined")]
    joined = row(world.db, created.session.id)
    assert joined.status == SessionStatus.JOINED and joined.joined_from == winner
    attempts = events(world.db, "support.code_attempt")
    assert sorted((e.outcome, e.reason) for e in attempts) == [
        ("failure", "used"),
        ("success", None),
    ]
