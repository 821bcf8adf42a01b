"""A disabled connection pushes nothing; what changed meanwhile goes out once it is enabled again."""

from __future__ import annotations

from datetime import timedelta

from hub.services.connections import UpdateConnection, update_connection
from hub.services.sync import push_changes
from jobs.queue import DatabaseQueue
from jobs.relay import relay
from tests.sync import support


def enable(hub, connection_id: str, enabled: bool) -> None:  # type: ignore[no-untyped-def]
    update_connection(UpdateConnection(connection_id, enabled=enabled), hub.uow("tests"))


def test_a_disabled_connection_keeps_its_changes_until_it_is_enabled_again(hub, sim):
    connection_id = support.hubspot_connection(hub, sim)
    ids = support.create_customers(hub, 3)
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    enable(hub, connection_id, False)

    report = push_changes(hub, connection_id, "customer")
    assert (report.pushed, report.more) == (0, False)
    assert sim.records("contacts") == []
    assert support.dirty(hub) == len(ids)

    enable(hub, connection_id, True)
    assert push_changes(hub, connection_id, "customer").pushed == len(ids)
    assert sorted(r["properties"]["abohub_id"] for r in sim.records("contacts")) == sorted(ids)
    assert support.dirty(hub) == 0
