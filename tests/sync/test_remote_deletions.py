"""A record deleted in HubSpot: the hub keeps its customer, drops the link, and creates it again later."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from hub.services import customers
from hub.services.reconcile import reconcile
from hub.services.sync import push_changes
from hub.store.models import Customer, Event, Link, WebhookReceipt
from jobs.queue import DatabaseQueue
from jobs.relay import relay
from jobs.sync_jobs import process_webhooks
from tests import factories

pytestmark = pytest.mark.usefixtures("webhooks_to_hub")


def sync_out(hub, connection_id):  # type: ignore[no-untyped-def]
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    return push_changes(hub, connection_id, "customer")


def linked_customer(hub, sim, connection_id):  # type: ignore[no-untyped-def]
    customer = factories.customer(hub, "Karen Jensen")
    sync_out(hub, connection_id)
    sim.flush_webhooks()
    process_webhooks(hub, connection_id)  # the echo of our own create
    return customer, remote_id_of(hub, customer.id)


def remote_id_of(hub, local_id: str) -> str | None:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.scalar(select(Link.remote_id).where(Link.local_id == local_id))


def deletion_events(hub) -> list[dict]:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return [e.data for e in session.scalars(select(Event).where(Event.type == "sync.remote_deleted"))]


def test_a_deletion_webhook_unlinks_and_the_next_change_creates_the_contact_again(hub, sim, connection_id):
    customer, remote_id = linked_customer(hub, sim, connection_id)
    sim.delete("contacts", remote_id)
    sim.flush_webhooks()
    report = process_webhooks(hub, connection_id)
    assert report["remote_deleted"] == 1
    assert remote_id_of(hub, customer.id) is None
    with hub.session_factory() as session:
        assert session.get(Customer, customer.id) is not None  # the hub keeps its customer
    [event] = deletion_events(hub)
    assert (
        event["remote_id"] == remote_id
        and event["local_id"] == customer.id
        and event["found_by"] == "webhook"
    )
    assert sync_out(hub, connection_id).pushed == 0  # recording the deletion does not push by itself

    customers.update_customer(customers.UpdateCustomer(customer.id, {"country": "SE"}), hub.uow())
    assert sync_out(hub, connection_id).pushed == 1
    again = remote_id_of(hub, customer.id)
    assert again and again != remote_id
    assert sim.get("contacts", again)["properties"]["country"] == "SE"
    assert [c["properties"]["email"] for c in sim.records("contacts")] == ["karen.jensen@example.dk"]


def test_a_deletion_event_for_a_contact_that_reads_back_does_not_unlink_it(hub, sim, connection_id):
    customer, remote_id = linked_customer(hub, sim, connection_id)
    with hub.session_factory() as session, session.begin():  # deleted, then restored before we processed it
        session.add(
            WebhookReceipt(
                connection_id=connection_id,
                event_id="restored-1",
                payload={
                    "event_id": "restored-1",
                    "object_type": "contacts",
                    "remote_id": remote_id,
                    "action": "deleted",
                    "occurred_at": None,
                    "properties": {},
                    "raw": None,
                },
                received_at=hub.clock.now(),
            )
        )
    assert process_webhooks(hub, connection_id)["remote_deleted"] == 0
    assert remote_id_of(hub, customer.id) == remote_id
    assert deletion_events(hub) == []


def test_reconcile_finds_a_deleted_contact_and_creates_it_again(hub, sim, connection_id):
    customer, remote_id = linked_customer(hub, sim, connection_id)
    kept = factories.customer(hub, "Anna Berg")
    sync_out(hub, connection_id)
    sim.delete("contacts", remote_id)  # no webhook reaches the hub (webhooks are not flushed)

    [preview] = reconcile(hub, connection_id, dry_run=True, object_types=["customer"]).objects
    assert (preview.remote_deleted, preview.created_remotely) == (1, 1)
    assert remote_id_of(hub, customer.id) == remote_id and deletion_events(hub) == []

    [report] = reconcile(hub, connection_id, object_types=["customer"]).objects
    assert (report.remote_deleted, report.created_remotely, report.already_linked) == (1, 1, 1)
    assert report.failed == 0
    recreated = remote_id_of(hub, customer.id)
    assert recreated and recreated != remote_id and remote_id_of(hub, kept.id)
    [event] = deletion_events(hub)
    assert event["found_by"] == "reconcile" and event["remote_id"] == remote_id
    assert sorted(c["properties"]["email"] for c in sim.records("contacts")) == [
        "anna.berg@example.dk",
        "karen.jensen@example.dk",
    ]
