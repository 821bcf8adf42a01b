"""A connection's page says when it last synced and what last failed as a whole (``last_synced_at``,
``last_error``): set by pushes, polls, webhook processing and reconciles, cleared by the next success."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connectors.errors import ConnectorError
from hub.services.connection_status import view_connection
from hub.services.connections import CreateConnection, UpdateConnection, create_connection, update_connection
from hub.services.reconcile import reconcile
from hub.services.sync import push_changes
from hub.store.models import Customer
from jobs.queue import DatabaseQueue
from jobs.relay import relay
from jobs.sync_jobs import poll, poll_connections, process_webhooks
from tests import factories
from tests.conftest import START

WRONG_TOKEN = "pat-na1-0f1e2d3c-revoked"


def shown(hub, connection_id):  # type: ignore[no-untyped-def]
    """(last synced, last error) as the API and the admin show them."""
    with hub.session_factory() as session:
        view = view_connection(session, hub.settings, connection_id)
    return view.last_synced_at, view.last_error


def country_of(hub, customer_id):  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.get(Customer, customer_id).country


def sync_out(hub, connection_id):  # type: ignore[no-untyped-def]
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    return push_changes(hub, connection_id, "customer")


def use_token(hub, connection_id, token):  # type: ignore[no-untyped-def]
    update_connection(UpdateConnection(connection_id, config={"access_token": token}, merge=True), hub.uow())


def test_a_new_connection_has_not_synced_and_has_no_error(hub, connection_id):
    assert shown(hub, connection_id) == (None, None)


def test_a_push_refused_as_a_whole_shows_on_the_connection_until_one_goes_through(hub, sim, connection_id):
    factories.customer(hub, "Karen Jensen")
    assert sync_out(hub, connection_id).pushed == 1
    assert shown(hub, connection_id) == (START, None)

    use_token(hub, connection_id, WRONG_TOKEN)  # the private app's token was revoked
    hub.clock.set(START + timedelta(hours=1))
    factories.customer(hub, "Ole Hansen")
    report = sync_out(hub, connection_id)
    assert (report.pushed, report.dead_lettered) == (0, 1)  # refused credentials: a person must act
    synced, error = shown(hub, connection_id)
    assert synced == START  # the last time it did sync
    assert error is not None and error.startswith("writing contacts: ")
    assert "401" in error or "auth" in error.lower()
    assert WRONG_TOKEN not in error

    use_token(hub, connection_id, sim.token)
    hub.clock.set(START + timedelta(hours=2))
    factories.customer(hub, "Ida Holm")
    assert sync_out(hub, connection_id).pushed == 1
    assert shown(hub, connection_id) == (START + timedelta(hours=2), None)


def test_a_record_the_vendor_refuses_is_not_the_connections_error(hub, connection_id):
    factories.customer(hub, "Bo Dal", email="bo at example")  # HubSpot refuses the address
    report = sync_out(hub, connection_id)
    assert report.dead_lettered == 1
    assert shown(hub, connection_id) == (START, None)  # HubSpot answered: the connection is fine


def test_a_failing_poll_is_recorded_and_the_other_connections_are_still_polled(hub, sim, connection_id):
    config = {"base_url": sim.base_url, "access_token": WRONG_TOKEN, "client_secret": sim.client_secret}
    broken = create_connection(CreateConnection("hubspot", "HubSpot (old portal)", config), hub.uow()).id
    sim.create("contacts", {"email": "ida@example.com", "firstname": "Ida", "lastname": "Holm"})

    polled = poll_connections(hub)
    assert isinstance(polled[f"{broken}:contacts"], str)  # its error, not a count
    assert polled[f"{connection_id}:contacts"] >= 1
    assert shown(hub, connection_id) == (START, None)
    synced, error = shown(hub, broken)
    assert synced is None and error is not None and error.startswith("polling contacts: ")
    assert WRONG_TOKEN not in error

    with pytest.raises(ConnectorError):  # called on its own, poll raises after recording
        poll(hub, broken, "contacts")

    use_token(hub, broken, sim.token)
    hub.clock.set(START + timedelta(minutes=1))
    poll(hub, broken, "contacts")
    assert shown(hub, broken) == (START + timedelta(minutes=1), None)


@pytest.mark.usefixtures("webhooks_to_hub")
def test_webhook_processing_that_cannot_read_the_records_is_recorded_and_retried(hub, sim, connection_id):
    customer = factories.customer(hub, "Karen Jensen")
    sync_out(hub, connection_id)
    sim.flush_webhooks()  # the echo of our own write
    process_webhooks(hub, connection_id)
    remote_id = next(record["id"] for record in sim.records("contacts"))
    hub.clock.set(START + timedelta(hours=1))
    sim.edit("contacts", remote_id, {"country": "NO"})
    sim.flush_webhooks()
    sim.faults.add("missing_scopes", None, path=r"/crm/v3/objects/contacts")  # a scope taken away
    with pytest.raises(ConnectorError):
        process_webhooks(hub, connection_id)
    synced, error = shown(hub, connection_id)
    assert synced == START and error is not None
    assert error.startswith("reading the records webhooks named: ")
    assert country_of(hub, customer.id) != "NO"

    sim.faults.clear()
    assert process_webhooks(hub, connection_id)["pulled"] == 1  # the receipt waited for the retry
    assert country_of(hub, customer.id) == "NO"
    assert shown(hub, connection_id) == (START + timedelta(hours=1), None)


def test_a_reconcile_records_its_outcome(hub, sim, connection_id):
    factories.customer(hub, "Karen Jensen")
    use_token(hub, connection_id, WRONG_TOKEN)
    with pytest.raises(ConnectorError):
        reconcile(hub, connection_id)
    assert shown(hub, connection_id)[1].startswith("reconciling: ")

    use_token(hub, connection_id, sim.token)
    report = reconcile(hub, connection_id)
    assert report.changes >= 1
    assert shown(hub, connection_id) == (START, None)
