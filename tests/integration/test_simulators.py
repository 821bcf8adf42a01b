"""`abohub serve --simulators`: the demo's HubSpot connection gets a live simulator, filled from the hub."""

from __future__ import annotations

import socket

import requests
from sqlalchemy import select

from hub.services.connections import CreateConnection, UpdateConnection, create_connection, update_connection
from hub.simulators import DEMO_CONNECTION, add_demo_connection, start_simulators
from hub.store.models import Connection, Link
from jobs.runtime import embedded_queue
from jobs.worker import EmbeddedWorker
from tests import factories


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_demo_connection_is_added_once(hub):
    first = add_demo_connection(hub, free_port())
    assert add_demo_connection(hub, free_port()) == first
    with hub.session_factory() as session:
        assert session.scalars(select(Connection.name)).all() == [DEMO_CONNECTION]


def test_a_simulator_starts_for_the_demo_connection_and_a_queued_reconcile_fills_it(hub):
    customer = factories.customer(hub, "Karen Jensen")
    factories.subscribe(hub, customer.id, factories.plan(hub, name="Pro").id)
    connection_id = add_demo_connection(hub, free_port())

    running = start_simulators(hub, "http://127.0.0.1:8000")
    try:
        assert [r.connection_id for r in running] == [connection_id]
        simulator = running[0].simulator
        answer = requests.get(
            f"{simulator.base_url}/crm/v3/objects/contacts",
            headers={"Authorization": f"Bearer {running[0].token}"},
            timeout=5,
        )
        assert answer.status_code == 200 and answer.json()["results"] == []  # a fresh simulator is empty
        assert simulator.webhooks.targets == [f"http://127.0.0.1:8000/webhooks/{connection_id}"]

        worker = EmbeddedWorker(hub, embedded_queue(hub))
        while worker.step():
            pass
        assert [c["properties"]["email"] for c in simulator.records("contacts")] == [customer.email]
        assert len(simulator.records("deals")) == 1
        with hub.session_factory() as session:
            assert len(session.scalars(select(Link)).all()) == 2
    finally:
        for one in running:
            one.simulator.stop()


def test_a_connection_to_the_real_vendor_or_a_disabled_one_gets_no_simulator(hub):
    demo = add_demo_connection(hub, free_port())
    update_connection(UpdateConnection(demo, enabled=False), hub.uow())
    create_connection(
        CreateConnection("hubspot", "Production", {"access_token": "pat-x", "client_secret": "s"}), hub.uow()
    )
    assert start_simulators(hub, "http://127.0.0.1:8000") == []
