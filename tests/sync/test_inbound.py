"""Changes made in HubSpot come back: by signed webhook and by polling, once, without echoes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from hub.services.sync import push_changes
from hub.store.models import Customer, Link, SyncCursor, WebhookReceipt
from jobs import sync_jobs
from jobs.queue import DatabaseQueue
from jobs.relay import relay
from jobs.sync_jobs import poll, process_webhooks
from tests import factories

pytestmark = pytest.mark.usefixtures("webhooks_to_hub")


def linked_customer(hub, sim, connection_id):  # type: ignore[no-untyped-def]
    customer = factories.customer(hub, "Karen Jensen")
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    push_changes(hub, connection_id, "customer")
    sim.flush_webhooks()  # HubSpot tells us about our own write: the echo
    process_webhooks(hub, connection_id)
    with hub.session_factory() as session:
        remote_id = session.scalar(select(Link.remote_id).where(Link.local_id == customer.id))
    return customer, remote_id


def country_of(hub, customer_id):  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.get(Customer, customer_id).country


def test_a_webhook_brings_a_hubspot_edit_in_once(hub, sim, connection_id):
    customer, remote_id = linked_customer(hub, sim, connection_id)
    writes = sim.writes("contacts", remote_id)

    sim.edit("contacts", remote_id, {"country": "NO"})
    deliveries = sim.flush_webhooks()
    assert deliveries and all(d.status == 200 for d in deliveries)
    report = process_webhooks(hub, connection_id)
    assert report["pulled"] == 1
    assert country_of(hub, customer.id) == "NO"
    # Processing again finds nothing new; the hub's own update pushes nothing back.
    assert process_webhooks(hub, connection_id)["pulled"] == 0
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    assert push_changes(hub, connection_id, "customer").pushed == 0
    assert sim.writes("contacts", remote_id) == writes
    with hub.session_factory() as session:
        assert all(r.processed_at for r in session.scalars(select(WebhookReceipt)))


def test_a_duplicate_delivery_is_applied_once(hub, sim, connection_id):
    customer, remote_id = linked_customer(hub, sim, connection_id)
    sim.webhooks.duplicates = True
    sim.edit("contacts", remote_id, {"country": "FI"})
    sim.flush_webhooks()
    with hub.session_factory() as session:
        stored = [r.payload["event_id"] for r in session.scalars(select(WebhookReceipt))]
    assert len(stored) == len(set(stored))
    assert process_webhooks(hub, connection_id)["pulled"] == 1
    assert country_of(hub, customer.id) == "FI"


def test_polling_finds_the_same_edit_and_keeps_its_cursor(hub, sim, connection_id):
    customer, remote_id = linked_customer(hub, sim, connection_id)
    poll(hub, connection_id, "contacts")  # catch up to now
    sim.edit("contacts", remote_id, {"country": "IS"})
    assert poll(hub, connection_id, "contacts") == 1
    assert country_of(hub, customer.id) == "IS"
    assert poll(hub, connection_id, "contacts") == 0
    with hub.session_factory() as session:
        assert session.get(SyncCursor, (connection_id, "contacts")).cursor


def test_a_backlog_bigger_than_one_run_is_carried_on_in_the_next(hub, sim, connection_id, monkeypatch):
    monkeypatch.setattr(sync_jobs, "RECEIPTS_PER_RUN", 2)
    customer, remote_id = linked_customer(hub, sim, connection_id)
    for country in ("NO", "SE", "FI"):  # three events, one run takes two
        sim.edit("contacts", remote_id, {"country": country})
        sim.flush_webhooks()
    queue = DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5))
    while (job := queue.take()) is not None:  # what the webhook deliveries queued
        queue.finish(job)

    runs = 0
    process_webhooks(hub, connection_id)  # the job the deliveries queued, as a worker would run it
    while (job := queue.take()) is not None:  # each full run queued the next at once
        assert job.id == f"webhooks:{connection_id}"
        process_webhooks(hub, connection_id)
        queue.finish(job)
        runs += 1
    assert runs >= 1
    with hub.session_factory() as session:
        assert all(r.processed_at for r in session.scalars(select(WebhookReceipt)))
    assert country_of(hub, customer.id) == "FI"
