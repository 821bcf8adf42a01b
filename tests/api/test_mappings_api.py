"""Mappings through the REST API: validate, save (versioned, audited, re-pushed), preview on real records."""

from __future__ import annotations

import copy
from datetime import timedelta

from sqlalchemy import func, select

from hub.services.sync import push_changes
from hub.store.models import Conflict, Customer, Event, Link, SyncState
from jobs.queue import DatabaseQueue
from jobs.relay import relay
from tests import factories


def sync_out(hub, connection_id):  # type: ignore[no-untyped-def]
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    return push_changes(hub, connection_id, "customer")


def stored(api, connection_id: str) -> dict:  # type: ignore[no-untyped-def]
    status, body = api.get(f"/connections/{connection_id}/mappings/customer")
    assert status == 200, body
    return body


def entry(definition: dict, local: str) -> int:
    return next(i for i, one in enumerate(definition["fields"]) if one.get("local") == local)


def put(api, connection_id: str, definition: dict, object_type: str = "customer"):  # type: ignore[no-untyped-def]
    response = api.client.put(
        f"/api/v1/connections/{connection_id}/mappings/{object_type}", json=definition, headers=api.headers
    )
    return response.status_code, response.get_json()


def mapping_events(hub) -> list[Event]:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return list(
            session.scalars(select(Event).where(Event.aggregate_type == "mapping").order_by(Event.id))
        )


def count(hub, model) -> int:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)))


def dirty_customers(hub) -> int:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return int(session.scalar(select(func.count()).where(SyncState.object_type == "customer")))


def test_a_new_connection_has_version_one_of_the_connectors_mapping(api, connection_id):
    status, listed = api.get(f"/connections/{connection_id}/mappings")
    assert status == 200
    customer = next(m for m in listed["data"] if m["object_type"] == "customer")
    assert (customer["remote_object"], customer["version"]) == ("contacts", 1)
    assert "name ↔ firstname+lastname" in customer["summary"]
    assert stored(api, connection_id) == customer
    assert api.get(f"/connections/{connection_id}/mappings/invoice")[0] == 404
    assert api.get("/connections/con_00000000000000000000000000/mappings")[0] == 404


def test_each_problem_is_named_by_its_path_and_nothing_is_saved(api, hub, connection_id):
    good = stored(api, connection_id)["definition"]
    name, country = entry(good, "name"), entry(good, "country")

    def refused(definition: dict, path: str, object_type: str = "customer") -> None:
        for url in (f"/connections/{connection_id}/mappings/{object_type}/validate", None):
            if url is None:
                status, body = put(api, connection_id, definition, object_type)
            else:
                status, body = api.post(url, definition)
            assert status == 422, body
            assert path in body["error"]["fields"], body["error"]

    no_policy = copy.deepcopy(good)
    del no_policy["fields"][name]["policy"]
    refused(no_policy, f"fields.{name}.policy")

    typo = copy.deepcopy(good)
    typo["fields"][country]["local"] = "contry"
    refused(typo, f"fields.{country}.local")

    pulls_mrr = copy.deepcopy(good)
    pulls_mrr["fields"].append(
        {"local": "mrr", "remote": "hs_mrr", "direction": "pull", "to_local": [{"name": "to_int"}]}
    )
    refused(pulls_mrr, f"fields.{len(good['fields'])}.direction")

    unknown_transform = copy.deepcopy(good)
    unknown_transform["fields"][country]["to_remote"] = [{"name": "shout"}]
    refused(unknown_transform, f"fields.{country}.to_remote.0.name")

    refused({**good, "remote_object": "tickets"}, "remote_object")
    refused({**good, "object_type": "subscription"}, "object_type")
    deal = {
        "remote_object": "deals",
        "key": [{"local": "id", "remote": "abohub_id"}],
        "fields": [{"local": "status", "remote": "dealstage", "direction": "both", "policy": "hub_wins",
                    "to_remote": [], "to_local": []}],
    }  # fmt: skip
    refused(deal, "fields.0.direction", object_type="subscription")  # HubSpot deals are push only

    assert stored(api, connection_id)["version"] == 1
    assert stored(api, connection_id)["definition"] == good
    assert mapping_events(hub) == []


def test_validate_says_what_saving_would_do_without_saving(api, hub, connection_id):
    factories.customer(hub, "Karen Jensen")
    factories.customer(hub, "Ole Olsen")
    sync_out(hub, connection_id)
    good = stored(api, connection_id)["definition"]
    changed = copy.deepcopy(good)
    changed["fields"][entry(good, "plan_names")]["to_remote"] = [{"name": "upper"}]

    status, body = api.post(f"/connections/{connection_id}/mappings/customer/validate", changed)
    assert status == 200, body
    assert (body["valid"], body["changes_pushed_fields"], body["would_requeue"]) == (True, True, 2)
    assert body["definition"] == changed
    status, body = api.post(f"/connections/{connection_id}/mappings/customer/validate", good)
    assert (body["changes_pushed_fields"], body["would_requeue"]) == (False, 0)
    assert stored(api, connection_id)["definition"] == good
    assert mapping_events(hub) == [] and dirty_customers(hub) == 0


def test_saving_a_pushed_field_change_repushes_linked_records_with_only_what_changed(
    api, hub, sim, connection_id
):
    subscriber = factories.customer(hub, "Karen Jensen")
    factories.subscribe(hub, subscriber.id, factories.plan(hub, 14_900, name="Kaffe hver måned").id)
    bystander = factories.customer(hub, "Ole Olsen")
    sync_out(hub, connection_id)
    with hub.session_factory() as session:
        remote = {
            row.local_id: row.remote_id for row in session.execute(select(Link.local_id, Link.remote_id))
        }
    writes = {local_id: sim.writes("contacts", remote_id) for local_id, remote_id in remote.items()}
    before = stored(api, connection_id)["definition"]
    changed = copy.deepcopy(before)
    changed["fields"][entry(before, "plan_names")]["to_remote"] = [{"name": "upper"}]

    status, saved = put(api, connection_id, changed)
    assert status == 200, saved
    assert (saved["version"], saved["changed"], saved["requeued"]) == (2, True, 2)
    assert saved["definition"] == changed
    [event] = mapping_events(hub)
    assert event.type == "mapping.updated" and event.actor.startswith("api_key:")
    assert (event.data["version"], event.data["before"], event.data["after"]) == (2, before, changed)

    report = push_changes(hub, connection_id, "customer")
    assert (report.pushed, report.unchanged) == (1, 1)  # the bystander has no plan: nothing differs
    contact = sim.get("contacts", remote[subscriber.id])["properties"]
    assert contact["abohub_plan"] == "KAFFE HVER MÅNED"
    assert sim.writes("contacts", remote[subscriber.id]) == writes[subscriber.id] + 1
    assert sim.writes("contacts", remote[bystander.id]) == writes[bystander.id]
    assert dirty_customers(hub) == 0

    status, again = put(api, connection_id, changed)
    assert (status, again["version"], again["changed"], again["requeued"]) == (200, 2, False, 0)
    assert len(mapping_events(hub)) == 1


def test_a_change_to_what_is_pulled_pushes_nothing(api, hub, connection_id):
    factories.customer(hub, "Karen Jensen")
    sync_out(hub, connection_id)
    before = stored(api, connection_id)["definition"]
    changed = copy.deepcopy(before)
    changed["fields"][entry(before, "country")]["to_local"] = [{"name": "trim"}]
    status, saved = put(api, connection_id, changed)
    assert (status, saved["version"], saved["requeued"]) == (200, 2, 0)
    assert dirty_customers(hub) == 0
    assert mapping_events(hub)[0].data["repush"] is False


def preview(api, connection_id: str, body: dict):  # type: ignore[no-untyped-def]
    return api.post(f"/connections/{connection_id}/mappings/customer/preview", body)


def test_preview_shows_what_would_be_pushed_what_differs_and_what_a_pull_would_apply(
    api, hub, sim, connection_id
):
    customer = factories.customer(hub, "Karen Jensen", email="Karen@Example.dk")
    sync_out(hub, connection_id)
    with hub.session_factory() as session:
        link = session.scalar(select(Link))
        fingerprints, remote_id = dict(link.fingerprints), link.remote_id
    sim.edit("contacts", remote_id, {"lastname": "Olsen", "country": "SE"})
    writes, events = sim.writes(), count(hub, Event)

    status, body = preview(api, connection_id, {"local_id": customer.id})
    assert status == 200, body
    assert (body["mapping"], body["linked"], body["remote_id"]) == ("stored", True, remote_id)
    assert body["properties"]["email"] == "karen@example.dk"
    assert (body["properties"]["firstname"], body["properties"]["lastname"]) == ("Karen", "Jensen")
    assert body["remote"]["lastname"] == "Olsen"
    differing = {d["remote_field"]: (d["hub"], d["remote"]) for d in body["differences"]}
    assert differing["lastname"] == ("Jensen", "Olsen") and differing["country"] == ("DK", "SE")
    assert "email" not in differing
    assert body["sync"]["apply"] == {"name": "Karen Olsen", "country": "SE"}
    assert body["sync"]["push"] == {} and body["sync"]["conflicts"] == []

    # Nothing was written anywhere.
    assert sim.writes() == writes and count(hub, Event) == events and count(hub, Conflict) == 0
    with hub.session_factory() as session:
        assert session.get(Customer, customer.id).name == "Karen Jensen"
        assert session.scalar(select(Link)).fingerprints == fingerprints


def test_preview_of_a_candidate_mapping_and_of_an_unlinked_record(api, hub, connection_id):
    customer = factories.customer(hub, "Karen Jensen")
    candidate = copy.deepcopy(stored(api, connection_id)["definition"])
    email = entry(candidate, "email")
    candidate["fields"][email]["to_remote"] = [{"name": "upper"}]
    status, body = preview(api, connection_id, {"local_id": customer.id, "definition": candidate})
    assert status == 200, body
    assert body["mapping"] == "candidate" and body["linked"] is False and body["remote"] is None
    assert body["properties"]["email"] == "KAREN.JENSEN@EXAMPLE.DK"
    assert body["sync"]["push"]["email"] == "KAREN.JENSEN@EXAMPLE.DK"  # a push would create it
    assert stored(api, connection_id)["version"] == 1

    del candidate["fields"][entry(candidate, "name")]["policy"]
    status, body = preview(api, connection_id, {"local_id": customer.id, "definition": candidate})
    assert status == 422 and f"definition.fields.{entry(candidate, 'name')}.policy" in body["error"]["fields"]
    status, body = preview(api, connection_id, {"local_id": "cus_00000000000000000000000000"})
    assert status == 422 and "local_id" in body["error"]["fields"]


def test_preview_while_the_vendor_misbehaves_still_answers(api, hub, sim, connection_id):
    customer = factories.customer(hub, "Karen Jensen")
    sync_out(hub, connection_id)
    sim.faults.add("malformed", count=None)
    status, body = preview(api, connection_id, {"local_id": customer.id})
    assert status == 200, body
    assert body["linked"] is True and body["remote"] is None
    assert body["remote_error"]["type"] == "MalformedResponse"
    assert body["properties"]["firstname"] == "Karen"


def test_the_local_fields_known_to_mappings_are_those_the_sync_reads(hub):
    from hub.services.mappings import LOCAL_FIELDS
    from hub.services.sync import local_values

    customer = factories.customer(hub, "Karen Jensen")
    subscription = factories.subscribe(hub, customer.id, factories.plan(hub).id)
    with hub.session_factory() as session:
        assert LOCAL_FIELDS["customer"] <= set(local_values(session, "customer", [customer.id])[customer.id])
        given = local_values(session, "subscription", [subscription])[subscription]
        assert LOCAL_FIELDS["subscription"] <= set(given)
