"""Deals associated with their contacts and companies: the connector against the simulator's v4 API."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connectors.base import ConnectorContext, WriteItem
from connectors.errors import FatalError, NotFound
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.simulator import HubSpotSimulator

CREATE = "/crm/v4/associations/{from_type}/{to_type}/batch/create"


@pytest.fixture
def hubspot(sim: HubSpotSimulator) -> HubSpotConnector:
    settings = {"base_url": sim.base_url, "access_token": sim.token, "client_secret": sim.client_secret}
    return HubSpotConnector(settings, ConnectorContext(timeout_seconds=5))


def deals(sim: HubSpotSimulator, count: int) -> list[str]:
    return sim.create_many("deals", ({"dealname": f"Pro — kunde {n}"} for n in range(count)))


def contact(sim: HubSpotSimulator, email: str = "karen@example.dk") -> str:
    return sim.create("contacts", {"email": email}, webhooks=False)


def test_a_thousand_and_one_deals_join_their_contact_in_two_requests(sim, hubspot):
    karen, deal_ids = contact(sim), deals(sim, 1001)

    results = hubspot.associate("deals", "contacts", [(deal_id, karen) for deal_id in deal_ids])

    assert [r.ok for r in results] == [True] * 1001
    assert [(r.local_id, r.remote_id) for r in results] == [(deal_id, karen) for deal_id in deal_ids]
    assert sim.stats.count("POST", CREATE) == 2
    assert sim.associations("contacts", karen, "deals") == sorted(deal_ids, key=int)
    assert sim.association_types("deals", deal_ids[0], "contacts") == {karen: [3]}  # unlabeled deal→contact
    assert hubspot.associations("contacts", [karen], "deals") == {karen: sorted(deal_ids, key=int)}


def test_associating_again_changes_nothing_and_is_no_error(sim, hubspot):
    karen, [deal_id] = contact(sim), deals(sim, 1)
    first = hubspot.associate("deals", "contacts", [(deal_id, karen)])
    again = hubspot.associate("deals", "contacts", [(deal_id, karen), (deal_id, karen)])
    assert [r.ok for r in first + again] == [True, True, True]
    assert sim.associations("deals", deal_id, "contacts") == [karen]
    assert sim.association_types("contacts", karen, "deals") == {deal_id: [4]}  # one association, both ways
    assert sim.stats.count("POST", CREATE) == 2  # the repeated pair went once in the second request


def test_deals_join_companies_written_by_the_connector(sim, hubspot):
    created = hubspot.ensure_properties()
    assert {"companies.abohub_id", "companies.abohub_mrr", "companies.abohub_vat_number"} <= set(created)
    [company] = hubspot.write_batch(
        "companies",
        [WriteItem("cus_1", {"name": "Nordisk Film A/S", "abohub_vat_number": "DK12345678"}, "k1")],
    )
    assert company.ok and sim.get("companies", company.remote_id)["properties"]["abohub_id"] == "cus_1"
    deal_ids = deals(sim, 3)

    results = hubspot.associate("deals", "companies", [(deal_id, company.remote_id) for deal_id in deal_ids])

    assert all(r.ok for r in results)
    assert sim.associations("companies", company.remote_id, "deals") == deal_ids
    assert sim.association_types("deals", deal_ids[0], "companies") == {company.remote_id: [341]}
    assert hubspot.associations("deals", deal_ids, "companies") == {d: [company.remote_id] for d in deal_ids}
    assert hubspot.associations("deals", ["30999999999"], "companies") == {"30999999999": []}


def test_pairs_naming_unknown_records_fail_alone(sim, hubspot):
    karen, (first, second) = contact(sim), deals(sim, 2)
    pairs = [(first, karen), (first, "999999"), ("30999999999", karen), (second, karen)]

    results = hubspot.associate("deals", "contacts", pairs)

    assert [r.ok for r in results] == [True, False, False, True]
    assert all(isinstance(r.error, NotFound) for r in results if not r.ok)
    assert "999999" in str(results[1].error) and "30999999999" in str(results[2].error)
    assert sim.associations("contacts", karen, "deals") == [first, second]
    assert sim.stats.count("POST", CREATE) == 1  # answered 207 for the lot


def test_a_pair_hubspot_refuses_outright_does_not_hold_back_the_others(sim, hubspot):
    karen, (first, second) = contact(sim), deals(sim, 2)
    results = hubspot.associate("deals", "contacts", [(first, karen), ("", karen), (second, karen)])
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, FatalError)  # the simulator refuses a batch with an empty id: 400
    assert sim.associations("contacts", karen, "deals") == [first, second]


def test_archiving_a_record_drops_its_associations(sim, hubspot):
    karen, (kept, archived) = contact(sim), deals(sim, 2)
    company = sim.create("companies", {"name": "Nordisk Film A/S"}, webhooks=False)
    hubspot.associate("deals", "contacts", [(kept, karen), (archived, karen)])
    hubspot.associate("deals", "companies", [(kept, company), (archived, company)])

    assert all(r.ok for r in hubspot.archive("deals", [archived]))
    assert sim.associations("contacts", karen, "deals") == [kept]
    assert sim.associations("companies", company, "deals") == [kept]
    assert hubspot.associations("contacts", [karen], "deals") == {karen: [kept]}

    sim.delete("contacts", karen)  # a person deletes the contact in HubSpot
    assert sim.associations("deals", kept, "contacts") == []
    [late] = hubspot.associate("deals", "contacts", [(archived, karen)])
    assert isinstance(late.error, NotFound)


def test_association_writes_are_counted_per_direction(sim, hubspot):
    karen, deal_ids = contact(sim), deals(sim, 3)
    hubspot.associate("deals", "contacts", [(deal_id, karen) for deal_id in deal_ids])
    hubspot.associate("deals", "contacts", [(deal_ids[0], karen)])
    assert sim.association_writes("deals", "contacts") == 4
    assert sim.association_writes("deals", "companies") == 0
    assert sim.writes("deals") == 0  # associating writes no deal properties


def test_only_known_directions_are_associated(hubspot):
    with pytest.raises(ValueError, match="deals→contacts"):
        hubspot.associate("deals", "tickets", [("1", "2")])


# --- the simulator's other v4 endpoints, as a client that uses them would see them -----------------


def post(sim: HubSpotSimulator, path: str, body: Any) -> requests.Response:
    return requests.post(sim.base_url + path, json=body, headers=sim.headers(), timeout=5)


def test_default_associations_reads_and_archives_over_http(sim):
    karen, [deal_id] = contact(sim), deals(sim, 1)
    company = sim.create("companies", {"name": "Nordisk Film A/S"}, webhooks=False)

    made = post(
        sim,
        "/crm/v4/associations/deal/0-2/batch/associate/default",  # singular names and type ids are fine
        {"inputs": [{"from": {"id": deal_id}, "to": {"id": company}}]},
    )
    assert made.status_code == 200
    assert made.json()["results"][0]["associationSpec"] == {
        "associationCategory": "HUBSPOT_DEFINED",
        "associationTypeId": 341,
    }
    sim.associate("contacts", karen, "companies", company, type_id=1)  # her primary company, set in HubSpot
    assert sim.association_types("companies", company, "contacts") == {karen: [2, 280]}

    read = post(
        sim, "/crm/v4/associations/companies/deals/batch/read", {"inputs": [{"id": company}, {"id": "7"}]}
    )
    assert read.status_code == 207
    body = read.json()
    assert body["results"][0]["to"][0]["toObjectId"] == deal_id
    assert body["errors"][0]["subCategory"] == "crm.associations.NO_ASSOCIATIONS_FOUND"
    listed = requests.get(
        f"{sim.base_url}/crm/v4/objects/contacts/{karen}/associations/companies",
        headers=sim.headers(),
        timeout=5,
    ).json()["results"]
    assert listed[0]["associationTypes"] == [
        {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"},
        {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None},
    ]

    removed = post(
        sim,
        "/crm/v4/associations/deals/companies/batch/archive",
        {"inputs": [{"from": {"id": deal_id}, "to": [{"id": company}]}]},
    )
    assert removed.status_code == 204
    assert sim.associations("companies", company, "deals") == []


def test_malformed_association_batches_are_refused_whole(sim):
    karen, [deal_id] = contact(sim), deals(sim, 1)
    wrong_type = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 341}  # deal→company's
    answer = post(
        sim,
        "/crm/v4/associations/deals/contacts/batch/create",
        {"inputs": [{"from": {"id": deal_id}, "to": {"id": karen}, "types": [wrong_type]}]},
    )
    assert answer.status_code == 400 and answer.json()["category"] == "VALIDATION_ERROR"
    too_many = [{"from": {"id": deal_id}, "to": {"id": karen}}] * 2001
    assert (
        post(
            sim, "/crm/v4/associations/deals/contacts/batch/associate/default", {"inputs": too_many}
        ).status_code
        == 400
    )
    assert (
        post(sim, "/crm/v4/associations/deals/tickets/batch/read", {"inputs": [{"id": deal_id}]}).status_code
        == 400
    )
    assert sim.associations("deals", deal_id, "contacts") == []
