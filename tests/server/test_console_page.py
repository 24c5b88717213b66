"""The console's empty machine list says which "empty" it is: no customer has granted
anything, or a grant exists whose group has no machine yet (a new technician read the
first and thought the grant had not worked)."""

from __future__ import annotations

from fjernhjelp.i18n import Translator
from tests.portal.web import browser
from tests.portal.world import build_world

NB = Translator("nb")
EN = Translator("en")


def test_no_grant_says_no_customer_has_granted_access(client, db, state) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, state, grant=False)
    with browser(client, world.tech) as page:
        html = page.get("/console").text
    assert NB("console.empty") in html
    assert NB("console.empty_groups") not in html


def test_a_grant_on_an_empty_group_says_the_group_has_no_machines(client, db, state) -> None:  # type: ignore[no-untyped-def]
    world = build_world(db, state)  # a grant on the GP office's group, which has no machine
    with browser(client, world.tech) as page:
        html = page.get("/console").text
        assert NB("console.empty_groups") in html
        assert NB("console.empty") not in html
        page.cookies.set("fjh_lang", "en")
        assert EN("console.empty_groups") in page.get("/console").text
