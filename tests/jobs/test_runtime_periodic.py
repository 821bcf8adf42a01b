"""The periodic job functions the runtime owns, run by name as a worker runs them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from hub.store.models import Connection, JobRun, Mapping, OutboxMessage
from jobs.registry import resolve
from jobs.relay import PUSH
from tests import factories


def connect(hub, clock) -> None:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session, session.begin():
        session.add(
            Connection(
                id="con_1",
                connector="hubspot",
                name="HubSpot",
                enabled=True,
                config_encrypted="-",
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
        session.add(
            Mapping(
                id="map_1",
                connection_id="con_1",
                object_type="customer",
                definition={"fields": [{"local": "name", "remote": "name", "direction": "push"}]},
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )


def push_jobs(hub) -> list[str]:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return list(session.scalars(select(JobRun.id).where(JobRun.function == PUSH)))


def test_relay_outbox_relays_every_row_and_queues_the_push_work(hub, clock):
    connect(hub, clock)
    for n in range(3):
        factories.customer(hub, name=f"Customer {n}")
    report = resolve("relay_outbox")(hub)
    assert report["relayed"] >= 3 and report["enqueued"] >= 1
    with hub.session_factory() as session:
        assert session.scalar(select(OutboxMessage.id).where(OutboxMessage.relayed_at.is_(None))) is None
    assert push_jobs(hub)
    assert resolve("relay_outbox")(hub) == {"relayed": 0, "marked": 0, "enqueued": 0}


def test_repair_sync_states_requeues_work_lost_after_the_configured_delay(hub, clock):
    connect(hub, clock)
    factories.customer(hub)
    resolve("relay_outbox")(hub)
    with hub.session_factory() as session, session.begin():
        session.execute(delete(JobRun))  # the queue lost it
    assert hub.settings.sync_repair_delay_seconds == 120
    clock.set(clock.now() + timedelta(seconds=100))
    assert resolve("repair_sync_states")(hub) == 0
    clock.set(clock.now() + timedelta(seconds=30))
    assert resolve("repair_sync_states")(hub) >= 1
    assert push_jobs(hub)


def test_run_billing_runs_the_billing_run(hub, clock):
    customer = factories.customer(hub)
    plan = factories.plan(hub)
    factories.subscribe(hub, customer.id, plan.id)
    clock.set(clock.now() + timedelta(days=32))
    report = resolve("run_billing")(hub)
    assert report["renewed"] == 1 and report["invoices"] >= 1
