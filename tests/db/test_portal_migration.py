"""Migration 0002 goes down and up again without touching the accounts that exist."""

from __future__ import annotations

from sqlalchemy import text

from fjernhjelp.db import migrate
from tests.helpers import make_org, make_user


def test_down_to_0001_keeps_users_and_their_factors(engine, db, state) -> None:
    org = make_org(db)
    make_user(db, state, org, "kari", admin=True)
    db.commit()
    db.close()
    migrate.downgrade(engine, "0001")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM factors")).scalar_one() == 1
        columns = conn.execute(text("SELECT * FROM users")).keys()
        assert "outside_eea" not in columns
    migrate.upgrade(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT username, outside_eea FROM users")).one()
        assert tuple(row) == ("kari", False)
        assert conn.execute(text("SELECT count(*) FROM factors")).scalar_one() == 1
