"""Two-way sync with the HubSpot simulator: changes cross both ways, nothing loops, clashes wait."""

from __future__ import annotations

import functools
from datetime import timedelta

import pytest
from sqlalchemy import select

from hub.services import customers
from hub.services.connections import open_connector
from hub.services.mappings import SaveMapping, save_mapping
from hub.services.sync import pull_records, push_changes
from hub.store.models import Conflict, Customer, Link
from hub.store.models import Mapping as MappingRow
from jobs import sync_jobs
from jobs.queue import DatabaseQueue
from jobs.relay import relay
from tests import factories


def sync_out(hub, connection_id):  # type: ignore[no-untyped-def]
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    return push_changes(hub, connection_id, "customer")


def remote_id_of(hub, local_id: str) -> str:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.scalar(select(Link.remote_id).where(Link.local_id == local_id))


def pull(hub, sim, connection_id, remote_id):  # type: ignore[no-untyped-def]
    connector = open_connector(hub.uow(), connection_id)
    record = connector.read("contacts", remote_id)
    return pull_records(hub, connection_id, "contacts", [record], connector)


def test_a_customer_made_in_abohub_appears_in_hubspot_with_its_revenue(hub, sim, connection_id):
    customer = factories.customer(hub, "Karen Jensen", email="Karen@Example.dk")
    plan = factories.plan(hub, amount=14_900)
    factories.subscribe(hub, customer.id, plan.id)

    report = sync_out(hub, connection_id)
    assert report.pushed == 1 and report.dead_lettered == 0
    contact = sim.get("contacts", remote_id_of(hub, customer.id))["properties"]
    assert (contact["firstname"], contact["lastname"], contact["email"]) == (
        "Karen",
        "Jensen",
        "karen@example.dk",
    )
    assert contact["abohub_mrr"] in ("149.00", "149")
    assert contact["abohub_status"] == "Active"


def test_a_change_in_hubspot_comes_back_and_does_not_loop(hub, sim, connection_id):
    customer = factories.customer(hub, "Karen Jensen")
    sync_out(hub, connection_id)
    remote_id = remote_id_of(hub, customer.id)
    writes_before = sim.writes("contacts", remote_id)

    sim.edit("contacts", remote_id, {"country": "SE"})
    report = pull(hub, sim, connection_id, remote_id)
    assert report.pulled == 1
    with hub.session_factory() as session:
        assert session.get(Customer, customer.id).country == "SE"

    # The hub's own update (made by the sync) is relayed and pushed: nothing differs, nothing is written.
    again = sync_out(hub, connection_id)
    assert again.pushed == 0
    # HubSpot echoing our last write back changes nothing either.
    assert pull(hub, sim, connection_id, remote_id).pulled == 0
    assert sim.writes("contacts", remote_id) == writes_before


def test_a_change_in_abohub_is_pushed_once(hub, sim, connection_id):
    customer = factories.customer(hub, "Karen Jensen")
    sync_out(hub, connection_id)
    remote_id = remote_id_of(hub, customer.id)
    before = sim.writes("contacts", remote_id)
    for n in range(10):
        customers.update_customer(
            customers.UpdateCustomer(customer.id, {"vat_number": f"DK1234567{n}"}), hub.uow()
        )
    report = sync_out(hub, connection_id)
    assert report.pushed == 1
    assert sim.writes("contacts", remote_id) == before + 1
    assert sim.get("contacts", remote_id)["properties"]["abohub_vat_number"] == "DK12345679"


def test_both_sides_changing_a_manual_field_makes_one_conflict_and_the_rest_still_syncs(
    hub, sim, connection_id
):
    customer = factories.customer(hub, "Karen Jensen")
    sync_out(hub, connection_id)
    remote_id = remote_id_of(hub, customer.id)

    sim.edit("contacts", remote_id, {"lastname": "Olsen"})
    customers.update_customer(
        customers.UpdateCustomer(customer.id, {"name": "Karen Hansen", "vat_number": "DK11223344"}), hub.uow()
    )
    report = sync_out(hub, connection_id)
    assert report.conflicts == 1
    contact = sim.get("contacts", remote_id)["properties"]
    assert contact["lastname"] == "Olsen"  # held, not overwritten
    assert contact["abohub_vat_number"] == "DK11223344"  # the other field went through
    with hub.session_factory() as session:
        conflicts = session.scalars(select(Conflict)).all()
    assert [(c.field, c.hub_value, c.remote_value) for c in conflicts] == [
        ("firstname+lastname", {"name": "Karen Hansen"}, {"name": "Karen Olsen"})
    ]
    # Pulling the same record again does not add a second conflict.
    pull(hub, sim, connection_id, remote_id)
    with hub.session_factory() as session:
        assert len(session.scalars(select(Conflict)).all()) == 1


def test_a_contact_already_in_hubspot_is_linked_by_email_not_duplicated(hub, sim, connection_id):
    existing = sim.create(
        "contacts",
        {"email": "karen.jensen@example.dk", "firstname": "Karen", "lastname": "Jensen"},
        webhooks=False,
    )
    customer = factories.customer(hub, "Karen Jensen")
    record = open_connector(hub.uow(), connection_id).read("contacts", existing)
    report = pull_records(hub, connection_id, "contacts", [record])
    assert report.linked == 1
    assert remote_id_of(hub, customer.id) == existing
    sync_out(hub, connection_id)
    assert len(sim.records("contacts")) == 1


def _clash(hub, sim, connection_id):  # type: ignore[no-untyped-def]
    customer = factories.customer(hub, "Karen Jensen")
    sync_out(hub, connection_id)
    remote_id = remote_id_of(hub, customer.id)
    sim.edit("contacts", remote_id, {"lastname": "Olsen"})
    customers.update_customer(customers.UpdateCustomer(customer.id, {"name": "Karen Hansen"}), hub.uow())
    sync_out(hub, connection_id)
    with hub.session_factory() as session:
        conflict = session.scalars(select(Conflict)).one()
    return customer, remote_id, conflict


def name_of(hub, customer_id):  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.get(Customer, customer_id).name


@pytest.mark.parametrize(
    ("choice", "value", "expected"),
    [
        ("hub", None, "Karen Hansen"),
        ("remote", None, "Karen Olsen"),
        ("value", {"name": "Karen Holm"}, "Karen Holm"),
    ],
)
def test_resolving_a_conflict_syncs_the_chosen_value_both_ways(
    hub, sim, connection_id, choice, value, expected
):
    from hub.services.conflicts import ResolveConflict, resolve_conflict

    customer, remote_id, conflict = _clash(hub, sim, connection_id)
    resolved = resolve_conflict(ResolveConflict(conflict.id, choice, value), hub, "user:ops")
    assert resolved.status == "resolved" and resolved.resolution == choice
    assert name_of(hub, customer.id) == expected
    contact = sim.get("contacts", remote_id)["properties"]
    assert f"{contact['firstname']} {contact['lastname']}" == expected
    # Settled: nothing more to push or pull, and no new conflict.
    assert sync_out(hub, connection_id).pushed == 0
    assert pull(hub, sim, connection_id, remote_id).conflicts == 0
    with pytest.raises(Exception, match="already resolved"):
        resolve_conflict(ResolveConflict(conflict.id, "hub"), hub, "user:ops")


def test_the_conflict_queue_through_the_api(hub, sim, connection_id):
    from hub.app import create_app
    from hub.services.apikeys import create_api_key
    from tests.api.conftest import ApiClient

    customer, _remote_id, conflict = _clash(hub, sim, connection_id)
    api = ApiClient(create_app(hub=hub).test_client(), create_api_key("ops", hub.uow()).secret)
    status, queue = api.get("/conflicts", status="open")
    assert status == 200 and [c["id"] for c in queue["data"]] == [conflict.id]
    assert queue["data"][0]["hub_value"] == {"name": "Karen Hansen"}
    assert queue["data"][0]["remote_value"] == {"name": "Karen Olsen"}
    status, body = api.post(f"/conflicts/{conflict.id}/resolve", {"choice": "whatever"})
    assert status == 422 and "choice" in body["error"]["fields"]
    status, resolved = api.post(f"/conflicts/{conflict.id}/resolve", {"choice": "remote"})
    assert (
        status == 200 and resolved["status"] == "resolved" and resolved["resolved_by"].startswith("api_key:")
    )
    assert name_of(hub, customer.id) == "Karen Olsen"
    status, queue = api.get("/conflicts", status="open")
    assert queue["data"] == []
    status, _again = api.post(f"/conflicts/{conflict.id}/resolve", {"choice": "hub"})
    assert status == 409
    assert api.get("/conflicts/cf_01M89SMV29MKYFK38R89HYVJXB")[0] == 404


def test_a_record_that_always_fails_lands_in_dead_letters_and_replays(hub, sim, connection_id):
    from hub.app import create_app
    from hub.services.apikeys import create_api_key
    from tests.api.conftest import ApiClient

    good = factories.customer(hub, "Anna Berg")
    bad = factories.customer(hub, "Bo Dal", email="bo at example")
    report = sync_out(hub, connection_id)
    assert report.pushed == 1 and report.dead_lettered == 1  # the good one is not held back
    api = ApiClient(create_app(hub=hub).test_client(), create_api_key("ops", hub.uow()).secret)
    status, letters = api.get("/dead-letters", open="true")
    [letter] = letters["data"]
    assert letter["local_id"] == bad.id and "INVALID_EMAIL" in letter["reason"] + str(letter["request"])
    assert sim.token not in str(letter)  # the request is scrubbed

    customers.update_customer(customers.UpdateCustomer(bad.id, {"email": "bo@example.dk"}), hub.uow())
    status, replayed = api.post(f"/dead-letters/{letter['id']}/replay")
    assert status == 200 and replayed["replayed_at"]
    assert push_changes(hub, connection_id, "customer").pushed == 1
    assert remote_id_of(hub, bad.id) and remote_id_of(hub, good.id)
    status, letters = api.get("/dead-letters", open="true")
    assert letters["data"] == []
    assert api.post(f"/dead-letters/{letter['id']}/replay")[0] == 409


def test_records_that_may_clash_are_read_a_hundred_per_request_before_the_push(hub, sim, connection_id):
    team = [factories.customer(hub, f"Kunde Nummer{i}", email=f"kunde{i}@example.dk") for i in range(150)]
    sync_out(hub, connection_id)
    edited_remotely = remote_id_of(hub, team[0].id)
    sim.edit("contacts", edited_remotely, {"lastname": "Olsen"})
    sim.reset_stats()
    for n, customer in enumerate(team):  # the name is a two-way field held for a person on a clash
        customers.update_customer(customers.UpdateCustomer(customer.id, {"name": f"Ny Kunde{n}"}), hub.uow())

    report = sync_out(hub, connection_id)
    assert sim.stats.count(method="POST", template="/crm/v3/objects/{object_type}/batch/read") == 2
    assert sim.stats.count(method="GET", template="/crm/v3/objects/{object_type}/{object_id}") == 0
    assert (report.pushed, report.conflicts) == (149, 1)
    assert sim.get("contacts", remote_id_of(hub, team[1].id))["properties"]["lastname"] == "Kunde1"
    assert sim.get("contacts", edited_remotely)["properties"]["lastname"] == "Olsen"  # held, not overwritten


def test_one_push_run_drains_a_backlog_batch_after_batch_within_its_time_budget(
    hub, sim, connection_id, monkeypatch
):
    monkeypatch.setattr(sync_jobs, "push_changes", functools.partial(push_changes, batch_size=5))
    queue = DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5))
    ids = [factories.customer(hub, f"Kunde {n}").id for n in range(12)]
    relay(hub, queue)
    queue.finish(queue.take())  # the run the relay queued; here it runs in the test

    report = sync_jobs.push_job(hub, connection_id, "customer")
    assert (report["pushed"], report["more"]) == (12, False)  # three batches in one run
    assert queue.take() is None and len(sim.records("contacts")) == 12

    for customer_id in ids:
        customers.update_customer(customers.UpdateCustomer(customer_id, {"country": "SE"}), hub.uow())
    relay(hub, queue)
    queue.finish(queue.take())
    monkeypatch.setattr(sync_jobs, "PUSH_BUDGET_SECONDS", 0.0)  # out of time after the first batch
    report = sync_jobs.push_job(hub, connection_id, "customer")
    assert (report["pushed"], report["more"]) == (5, True)
    assert queue.take().id == f"push:{connection_id}:customer"  # the rest goes to the next run


def test_a_record_whose_write_is_still_on_its_way_is_not_read_again_for_the_next_batch(
    hub, sim, connection_id
):
    ids = [factories.customer(hub, f"Kunde {n}").id for n in range(12)]
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    # Every write takes 0.3 s, so the next batches are read and planned while the first is sent.
    sim.faults.add("timeout", None, path=r"/batch/(create|upsert|update)$", seconds=0.3, apply=True)

    report = push_changes(hub, connection_id, "customer", batch_size=5, seconds=60)
    writes = sum(
        sim.stats.count(method="POST", template=f"/crm/v3/objects/{{object_type}}/batch/{kind}")
        for kind in ("create", "upsert", "update")
    )
    assert (report.pushed, report.more, writes) == (12, False, 3)  # each record written once, 5 + 5 + 2
    assert len(sim.records("contacts")) == len(ids)


def test_editing_a_two_way_fields_outbound_transform_rewrites_the_linked_records(hub, sim, connection_id):
    customer = factories.customer(hub, "Karen Jensen", country="DK")
    sync_out(hub, connection_id)
    remote_id = remote_id_of(hub, customer.id)
    assert sim.get("contacts", remote_id)["properties"]["country"] == "DK"
    with hub.session_factory() as session:
        definition = session.scalar(
            select(MappingRow.definition).where(
                MappingRow.connection_id == connection_id, MappingRow.object_type == "customer"
            )
        )
    (country,) = [entry for entry in definition["fields"] if entry["local"] == "country"]
    assert (country["direction"], country["policy"]) == ("both", "newest_wins")  # the remote is read first
    country["to_remote"] = [{"name": "lower"}]

    saved = save_mapping(SaveMapping(connection_id, "customer", definition), hub.uow())
    report = push_changes(hub, connection_id, "customer")

    assert (saved.requeued, report.pushed, report.conflicts) == (1, 1, 0)
    assert sim.get("contacts", remote_id)["properties"]["country"] == "dk"
    with hub.session_factory() as session:
        assert session.get(Customer, customer.id).country == "DK"  # read back upper-case: unchanged
