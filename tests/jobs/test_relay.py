"""The outbox relay: committed changes become push work once, and lost jobs come back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, select

from hub.services import catalog, customers
from hub.store.models import Connection, JobRun, Mapping, OutboxMessage, SyncState
from jobs.queue import DatabaseQueue
from jobs.relay import relay, repair
from tests import factories


@pytest.fixture
def queue(hub, clock):  # type: ignore[no-untyped-def]
    return DatabaseQueue(hub.session_factory, clock, lease=timedelta(minutes=5))


def connect(hub, clock, *object_types: str, direction: str = "both", enabled: bool = True) -> str:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session, session.begin():
        session.add(
            Connection(
                id="con_1",
                connector="hubspot",
                name="HubSpot",
                enabled=enabled,
                config_encrypted="-",
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
        for n, object_type in enumerate(object_types):
            session.add(
                Mapping(
                    id=f"map_{n}",
                    connection_id="con_1",
                    object_type=object_type,
                    definition={"fields": [{"local": "x", "remote": "y", "direction": direction}]},
                    created_at=clock.now(),
                    updated_at=clock.now(),
                )
            )
    return "con_1"


def states(hub):  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return sorted((s.object_type, s.local_id) for s in session.scalars(select(SyncState)))


def unrelayed(hub) -> int:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return len(list(session.scalars(select(OutboxMessage.id).where(OutboxMessage.relayed_at.is_(None)))))


def test_each_change_marks_its_records_and_queues_one_job_per_object_type(hub, clock, queue):
    connect(hub, clock, "customer", "subscription")
    customer = factories.customer(hub)
    plan = factories.plan(hub)
    sub_id = factories.subscribe(hub, customer.id, plan.id)

    report = relay(hub, queue)
    assert unrelayed(hub) == 0
    assert states(hub) == sorted([("customer", customer.id), ("subscription", sub_id)])
    assert report.enqueued == 2
    taken = {queue.take().id, queue.take().id}
    assert taken == {"push:con_1:customer", "push:con_1:subscription"}


def test_relaying_twice_does_nothing_more(hub, clock, queue):
    connect(hub, clock, "customer")
    factories.customer(hub)
    assert relay(hub, queue).enqueued == 1
    again = relay(hub, queue)
    assert (again.relayed, again.enqueued) == (0, 0)


def test_no_connection_no_work_but_rows_are_still_relayed(hub, clock, queue):
    connect(hub, clock, "customer", direction="pull")
    factories.customer(hub)
    report = relay(hub, queue)
    assert report.relayed >= 1 and report.enqueued == 0 and states(hub) == []


def test_a_disabled_connection_gets_nothing(hub, clock, queue):
    connect(hub, clock, "customer", enabled=False)
    factories.customer(hub)
    assert relay(hub, queue).enqueued == 0


def test_jobs_lost_after_the_commit_are_enqueued_again_by_repair(hub, clock, queue):
    connect(hub, clock, "customer")
    customer = factories.customer(hub)
    relay(hub, queue)
    with hub.session_factory() as session, session.begin():
        session.execute(delete(JobRun))  # the queue lost everything (a Redis restart, say)
    assert queue.take() is None
    assert repair(hub, queue, older_than=timedelta(minutes=2)) == 0  # too fresh to call lost
    clock.set(clock.now() + timedelta(minutes=3))
    assert repair(hub, queue, older_than=timedelta(minutes=2)) == 1
    assert queue.take().id == "push:con_1:customer"
    assert states(hub) == [("customer", customer.id)]


def test_a_record_whose_retry_time_has_come_is_queued_at_once_by_repair(hub, clock, queue):
    connect(hub, clock, "customer")
    factories.customer(hub)
    relay(hub, queue)
    queue.finish(queue.take())  # the push ran and failed: the record waits for its retry
    with hub.session_factory() as session, session.begin():
        state = session.scalars(select(SyncState)).one()
        state.attempts, state.next_attempt_at = 1, clock.now() + timedelta(seconds=30)
    assert repair(hub, queue, older_than=timedelta(minutes=2)) == 0  # not yet due
    clock.set(clock.now() + timedelta(seconds=30))
    assert repair(hub, queue, older_than=timedelta(minutes=2)) == 1  # due: no grace as for lost jobs
    assert queue.take().id == "push:con_1:customer"


def test_a_renamed_customer_or_plan_touches_the_subscriptions_that_show_it(hub, clock, queue):
    connect(hub, clock, "subscription")
    karen, ole = factories.customer(hub, "Karen Jensen"), factories.customer(hub, "Ole Hansen")
    basic, pro = factories.plan(hub, name="Basic"), factories.plan(hub, name="Pro")
    karens = factories.subscribe(hub, karen.id, basic.id)
    oles = factories.subscribe(hub, ole.id, pro.id)
    relay(hub, queue)
    with hub.session_factory() as session, session.begin():
        session.execute(delete(SyncState))

    customers.update_customer(customers.UpdateCustomer(karen.id, {"name": "Karen Holm"}), hub.uow())
    relay(hub, queue)
    assert states(hub) == [("subscription", karens)]

    catalog.update_plan(catalog.Update(pro.id, {"name": "Pro 2027"}), hub.uow())
    relay(hub, queue)
    assert states(hub) == sorted([("subscription", karens), ("subscription", oles)])
