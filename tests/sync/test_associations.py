"""A subscription's deal is associated with its customer's contact in HubSpot, once, whichever goes first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from hub.services import customers
from hub.services.reconcile import reconcile
from hub.store.models import Link
from jobs.queue import DatabaseQueue
from jobs.relay import relay
from jobs.sync_jobs import push_job
from tests import factories


def push(hub, connection_id: str, *object_types: str) -> list[dict]:  # type: ignore[no-untyped-def]
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    return [push_job(hub, connection_id, object_type) for object_type in object_types]


def remote_id_of(hub, object_type: str, local_id: str) -> str:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.scalar(
            select(Link.remote_id).where(Link.object_type == object_type, Link.local_id == local_id)
        )


@pytest.mark.parametrize("order", [("subscription", "customer"), ("customer", "subscription")])
def test_the_deal_is_associated_with_the_contact_whichever_is_pushed_first(hub, sim, connection_id, order):
    customer = factories.customer(hub, "Karen Jensen")
    subscription_id = factories.subscribe(hub, customer.id, factories.plan(hub, name="Pro").id)

    reports = push(hub, connection_id, *order)
    assert [r["errors"] for r in reports] == [[], []]
    deal, contact = (
        remote_id_of(hub, "subscription", subscription_id),
        remote_id_of(hub, "customer", customer.id),
    )
    assert sim.associations("deals", deal, "contacts") == [contact]
    assert sim.associations("contacts", contact, "deals") == [deal]
    assert sim.association_writes("deals", "contacts") == 1

    customers.update_customer(customers.UpdateCustomer(customer.id, {"name": "Karen Holm"}), hub.uow())
    push(hub, connection_id, "subscription", "customer")
    assert sim.association_writes("deals", "contacts") == 1  # done once: a later push does not repeat it


def test_an_association_that_fails_is_made_at_the_next_push(hub, sim, connection_id):
    customer = factories.customer(hub, "Karen Jensen")
    subscription_id = factories.subscribe(hub, customer.id, factories.plan(hub, name="Pro").id)
    push(hub, connection_id, "customer")
    sim.faults.add("http_503", None, path=r"/crm/v4/associations/")  # HubSpot's associations are down

    report = push(hub, connection_id, "subscription")[0]
    assert report["pushed"] == 1 and report["errors"]  # the deal is written; its association waits
    deal = remote_id_of(hub, "subscription", subscription_id)
    assert sim.associations("deals", deal, "contacts") == []

    sim.faults.clear()
    factories.subscribe(hub, customer.id, factories.plan(hub, name="Extra").id)  # any later push
    push(hub, connection_id, "subscription")
    assert sim.associations("deals", deal, "contacts") == [remote_id_of(hub, "customer", customer.id)]


def test_reconcile_associates_what_is_left_and_counts_it(hub, sim, connection_id):
    karen, ole = factories.customer(hub, "Karen Jensen"), factories.customer(hub, "Ole Hansen")
    plan = factories.plan(hub, name="Pro")
    subscription_ids = [factories.subscribe(hub, c.id, plan.id) for c in (karen, ole)]
    push(hub, connection_id, "subscription", "customer")
    with hub.session_factory() as session, session.begin():  # as if made before associations existed
        session.execute(update(Link).values(associated_to=None))
    for subscription_id in subscription_ids:
        sim.store.associations.drop(("deals", int(remote_id_of(hub, "subscription", subscription_id))))

    report = reconcile(hub, connection_id)
    assert report.associated == 2 and report.failed == 0
    for subscription_id, customer in zip(subscription_ids, (karen, ole), strict=True):
        deal = remote_id_of(hub, "subscription", subscription_id)
        assert sim.associations("deals", deal, "contacts") == [remote_id_of(hub, "customer", customer.id)]
    assert reconcile(hub, connection_id).changes == 0
