"""GET /api/v1/support-customers: the customers a technician may start a Support session
for, as the console's "New Support session" offers them (for the command line)."""

from __future__ import annotations

from fjernhjelp.portal import agreements, grants
from tests.portal.web import Api
from tests.portal.world import World


def test_a_technician_is_offered_the_customers_whose_agreement_covers_support(
    client, world: World
) -> None:
    offered = Api(client, world.tech).get("/support-customers")
    assert offered.status_code == 200
    assert offered.json() == [
        {"id": str(world.gp.id), "name": world.gp.name, "orgnr": world.gp.orgnr}
    ]
    # A customer's admin gives no help: nobody to offer.
    assert Api(client, world.gp_admin).get("/support-customers").json() == []


def test_an_agreement_for_access_only_offers_nothing(client, world: World) -> None:
    grants.revoke(world.db, world.caller(world.gp_admin), world.grant.id)  # type: ignore[union-attr]
    agreements.revoke(world.db, world.caller(world.gp_admin), world.agreement.id)  # type: ignore[union-attr]
    world.db.commit()
    world.record_agreement(reference="Bare Access", covers="access")
    assert Api(client, world.tech).get("/support-customers").json() == []


def test_the_list_needs_a_login(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/support-customers").status_code == 401
