"""Reconcile: every record on both sides compared, matches linked instead of duplicated, drift repaired."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, insert, select

from connectors.hubspot.simulator import HubSpotSimulator
from hub import cli
from hub.services.connections import CreateConnection, create_connection, open_connector
from hub.services.reconcile import reconcile
from hub.store.models import Conflict, Customer, Event, Link
from hub.store.models import Mapping as MappingRow
from tests import factories
from tests.conftest import START, count

HUB_ONLY, BOTH, REMOTE_ONLY = 2000, 2000, 1000


@pytest.fixture
def sim() -> Iterator[HubSpotSimulator]:
    with HubSpotSimulator(webhook_mode="off", rate_limit=100_000, search_rate_limit=1_000) as simulator:
        yield simulator


@pytest.fixture
def connection_id(hub, sim) -> str:  # type: ignore[no-untyped-def]
    config = {
        "base_url": sim.base_url,
        "access_token": sim.token,
        "client_secret": sim.client_secret,
        "requests_per_ten_seconds": 10_000,
        "searches_per_second": 100,
    }
    connection = create_connection(CreateConnection("hubspot", "HubSpot", config), hub.uow("tests"))
    open_connector(hub.uow(), connection.id).ensure_properties()
    return connection.id


def customers_of(report: Any) -> Any:
    return next(one for one in report.objects if one.object_type == "customer")


def seed_hub(hub, rows: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    """Customers that were there before the connection (inserted in bulk: thousands of them)."""
    defaults = {"currency": "DKK", "locale": "da_DK", "meta": {}, "mrr": 0, "revenue_state": "none"}
    with hub.session_factory() as session, session.begin():
        session.execute(
            insert(Customer),
            [{"created_at": START, "updated_at": START, **defaults, **row} for row in rows],
        )


def snapshot(hub) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        customers = session.execute(
            select(
                Customer.id, Customer.name, Customer.email, Customer.country, Customer.vat_number
            ).order_by(Customer.id)
        ).all()
    tables = ("links", "events", "outbox", "conflicts", "dead_letters", "sync_states")
    return {"customers": customers, **{table: count(hub, table) for table in tables}}


def both_side_data() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The overlap: the same people in the hub and in HubSpot, with e-mails typed differently and drift.

    i % 10 == 0: the VAT numbers differ (hub_wins) · 1: the countries differ (newest_wins: HubSpot's
    change is later) · 2: the last names differ (manual) · 3: only the hub has a VAT number · 4: only
    HubSpot has one.
    """
    hub_rows, remote_rows = [], []
    spellings = ("  Both{i}@Example.DK ", "BOTH{i}@example.dk", "both{i}@example.dk")
    for i in range(BOTH):
        hub_vat = None if i % 10 == 4 else f"DK{i:08d}"
        remote_vat = {0: "DK99999999", 3: None}.get(i % 10, f"DK{i:08d}")
        hub_rows.append(
            {
                "id": f"cus_both{i:05d}",
                "name": f"Both Person{i}",
                "email": spellings[i % 3].format(i=i),
                "country": "DK",
                "vat_number": hub_vat,
            }
        )
        remote = {
            "email": f"both{i}@example.dk",
            "firstname": "Both",
            "lastname": f"Persson{i}" if i % 10 == 2 else f"Person{i}",
            "country": "SE" if i % 10 == 1 else "DK",
        }
        if remote_vat:
            remote["abohub_vat_number"] = remote_vat
        remote_rows.append(remote)
    return hub_rows, remote_rows


def test_reconcile_links_creates_and_repairs_5000_records_without_duplicates(hub, sim, connection_id):
    hub_rows, remote_rows = both_side_data()
    hub_rows += [
        {"id": f"cus_hub{i:05d}", "name": f"Hub Only{i}", "email": f"hub{i}@example.dk", "country": "DK"}
        for i in range(HUB_ONLY)
    ]
    remote_rows += [
        {"email": f"lead{i}@example.com", "firstname": "Lead", "lastname": str(i)} for i in range(REMOTE_ONLY)
    ]
    seed_hub(hub, hub_rows)
    sim.create_many("contacts", remote_rows)
    sim.reset_stats()

    before = snapshot(hub)
    preview = reconcile(hub, connection_id, dry_run=True)
    assert sim.writes() == 0 and snapshot(hub) == before  # a dry run changes nothing on either side

    report = reconcile(hub, connection_id)
    done = customers_of(report)
    assert (done.remote_seen, done.local_seen, done.already_linked) == (
        BOTH + REMOTE_ONLY,
        BOTH + HUB_ONLY,
        0,
    )
    assert done.linked_by_key == {"email": BOTH}
    assert (done.created_remotely, done.remote_only, done.failed) == (HUB_ONLY, REMOTE_ONLY, 0), done.failures
    assert done.updated_locally == 400  # the later country, and the VAT number only HubSpot had
    assert done.updated_remotely == BOTH  # the hub's status, plan and MRR fields reach every matched contact
    assert done.conflicts_raised == 200
    assert customers_of(preview).changes == done.changes  # the dry run said what the real one did
    assert {k: v for k, v in customers_of(preview).__dict__.items() if k != "failures"} == {
        k: v for k, v in done.__dict__.items() if k != "failures"
    }

    contacts = sim.records("contacts")
    emails = Counter(contact["properties"]["email"] for contact in contacts)
    assert len(contacts) == HUB_ONLY + BOTH + REMOTE_ONLY and max(emails.values()) == 1
    with hub.session_factory() as session:
        links = session.execute(
            select(Link.local_id, Link.remote_id).where(Link.object_type == "customer")
        ).all()
        assert len(links) == len({local for local, _ in links}) == len({remote for _, remote in links})
        assert {local for local, _ in links} == set(session.scalars(select(Customer.id)))
        hub_customers = {c.id: c for c in session.scalars(select(Customer))}
        conflicts = session.scalars(select(Conflict).where(Conflict.status == "open")).all()
    by_id = {contact["id"]: contact["properties"] for contact in contacts}
    remote_of = dict(links)
    for i in (0, 10, 1990):  # hub_wins: HubSpot now has the hub's VAT number
        assert by_id[remote_of[f"cus_both{i:05d}"]]["abohub_vat_number"] == f"DK{i:08d}"
    for i in (1, 11, 1991):  # newest_wins: the hub took HubSpot's later country
        assert hub_customers[f"cus_both{i:05d}"].country == "SE"
    for i in (3, 1993):  # HubSpot had no VAT number: it gets the hub's
        assert by_id[remote_of[f"cus_both{i:05d}"]]["abohub_vat_number"] == f"DK{i:08d}"
    for i in (4, 1994):  # the hub had none: it takes HubSpot's
        assert hub_customers[f"cus_both{i:05d}"].vat_number == f"DK{i:08d}"
    assert len(conflicts) == 200 and {c.field for c in conflicts} == {"firstname+lastname"}
    assert hub_customers["cus_both00002"].name == "Both Person2"  # manual: held, not overwritten
    assert by_id[remote_of["cus_both00002"]]["lastname"] == "Persson2"
    assert by_id[remote_of["cus_hub00007"]]["email"] == "hub7@example.dk"

    writes = sim.writes()
    again = customers_of(reconcile(hub, connection_id))
    assert (again.changes, again.failed, again.already_linked) == (0, 0, BOTH + HUB_ONLY)
    assert again.conflicts_open == 200 and again.remote_only == REMOTE_ONLY
    assert sim.writes() == writes
    with hub.session_factory() as session:
        reconciled = session.scalars(select(Event).where(Event.type == "sync.reconciled")).all()
    assert len(reconciled) == 2 and reconciled[0].data["objects"][0]["created_remotely"] == HUB_ONLY


def use_keys(hub, connection_id: str, keys: list[dict[str, str]]) -> None:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session, session.begin():
        row = session.scalar(
            select(MappingRow).where(
                MappingRow.connection_id == connection_id, MappingRow.object_type == "customer"
            )
        )
        row.definition = {**row.definition, "key": keys}


def linked_remote(hub, local_id: str) -> str | None:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.scalar(select(Link.remote_id).where(Link.local_id == local_id))


def test_records_are_matched_by_vat_number_and_by_external_id(hub, sim, connection_id):
    vat_key = {"local": "vat_number", "remote": "abohub_vat_number"}
    use_keys(
        hub,
        connection_id,
        [vat_key, {"local": "email", "remote": "email"}, {"local": "id", "remote": "abohub_id"}],
    )
    by_vat = factories.customer(hub, "Anna Berg", email="anna@example.dk", vat_number="DK11111111")
    by_id = factories.customer(hub, "Bo Dal", email="bo@example.dk")
    shared = factories.customer(hub, "Carl Ek", email="carl@example.dk", vat_number="DK22222222")
    vat_contact = sim.create(
        "contacts", {"email": "accounts@anna.dk", "abohub_vat_number": "DK11111111"}, webhooks=False
    )
    id_contact = sim.create("contacts", {"email": "old-bo@example.dk", "abohub_id": by_id.id}, webhooks=False)
    for n in range(2):  # two contacts of one company share its VAT number: neither is guessed
        sim.create(
            "contacts", {"email": f"staff{n}@carl.dk", "abohub_vat_number": "DK22222222"}, webhooks=False
        )

    report = customers_of(reconcile(hub, connection_id))
    assert report.linked_by_key == {"abohub_vat_number": 1, "abohub_id": 1}
    assert linked_remote(hub, by_vat.id) == vat_contact and linked_remote(hub, by_id.id) == id_contact
    assert sim.get("contacts", id_contact)["properties"]["email"] == "bo@example.dk"  # email is hub_wins
    assert report.created_remotely == 0 and report.remote_only == 2
    assert (
        report.failed == 1
        and shared.id in report.failures[0]
        and "share its abohub_vat_number" in report.failures[0]
    )
    assert linked_remote(hub, shared.id) is None and len(sim.records("contacts")) == 4


def test_a_dry_run_of_a_hub_with_new_customers_says_it_would_create_them(hub, sim, connection_id):
    factories.customer(hub, "Anna Berg")
    report = customers_of(reconcile(hub, connection_id, dry_run=True))
    assert report.created_remotely == 1 and sim.records("contacts") == []
    assert count(hub, "links") == 0
    assert customers_of(reconcile(hub, connection_id)).created_remotely == 1
    assert len(sim.records("contacts")) == 1


def test_drift_on_a_push_only_field_is_repaired(hub, sim, connection_id):
    customer = factories.customer(hub, "Anna Berg")
    reconcile(hub, connection_id)
    remote_id = linked_remote(hub, customer.id)
    sim.edit("contacts", remote_id, {"abohub_status": "Churned", "country": "NO"})  # edited in the CRM
    report = customers_of(reconcile(hub, connection_id))
    assert (report.updated_remotely, report.updated_locally) == (1, 1)
    assert sim.get("contacts", remote_id)["properties"]["abohub_status"] == "Prospect"  # the hub's own field
    with hub.session_factory() as session:
        assert session.get(Customer, customer.id).country == "NO"  # a two-way field changed only there


def test_reconcile_refuses_an_unknown_connection_or_object_type(hub, connection_id):
    from hub.domain.errors import InvalidRequest, NotFound

    with pytest.raises(NotFound):
        reconcile(hub, "con_missing")
    with pytest.raises(InvalidRequest) as error:
        reconcile(hub, connection_id, object_types=["invoice"])
    assert "invoice" in str(error.value.fields)


def test_links_are_unique_per_customer(hub, sim, connection_id):
    factories.customer(hub, "Anna Berg")
    reconcile(hub, connection_id)
    reconcile(hub, connection_id)
    with hub.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Link)) == 1


def abohub(hub, monkeypatch, *args: str) -> Result:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(cli, "_hub", lambda: hub)
    return CliRunner().invoke(cli.main, list(args))


def test_the_reconcile_command_prints_a_table_or_json_and_fails_when_records_fail(
    hub, sim, connection_id, monkeypatch
):
    factories.customer(hub, "Anna Berg")
    factories.customer(hub, "Bo Dal", email="bo at example")  # HubSpot refuses this e-mail

    preview = abohub(hub, monkeypatch, "sync", "reconcile", "HubSpot", "--dry-run")  # by name
    assert preview.exit_code == 0, preview.output  # a dry run cannot know what the vendor will refuse
    assert "dry run: nothing was changed" in preview.stdout, preview.stdout
    lines = {line.rsplit(None, 2)[0].strip(): line.split()[-2:] for line in preview.stdout.splitlines()[2:14]}
    assert lines["created remotely"] == ["2", "0"]  # customers ↔ contacts, subscriptions ↔ deals
    assert sim.records("contacts") == []

    done = abohub(hub, monkeypatch, "sync", "reconcile", connection_id, "--json")
    assert done.exit_code == 1, done.output
    report = json.loads(done.stdout)
    [customers] = [one for one in report["objects"] if one["object_type"] == "customer"]
    assert (customers["created_remotely"], customers["failed"]) == (1, 1)
    assert "INVALID_EMAIL" in customers["failures"][0], customers["failures"]

    missing = abohub(hub, monkeypatch, "sync", "reconcile", "no-such-connection")
    assert missing.exit_code == 1 and "no connection" in missing.stderr


def test_the_nightly_job_reconciles_every_enabled_connection(hub, sim, connection_id):
    from hub.services.connections import UpdateConnection, update_connection
    from jobs.registry import resolve

    factories.customer(hub, "Anna Berg")
    config = {"base_url": sim.base_url, "access_token": sim.token, "client_secret": sim.client_secret}
    paused = create_connection(CreateConnection("hubspot", "Paused", config), hub.uow("tests"))
    update_connection(UpdateConnection(paused.id, enabled=False), hub.uow("tests"))

    result = resolve("reconcile_connections")(hub)
    assert set(result) == {connection_id} and (
        result[connection_id]["changes"],
        result[connection_id]["failed"],
    ) == (1, 0)
    assert len(sim.records("contacts")) == 1


def test_a_customer_refused_as_a_duplicate_is_linked_by_reconcile_and_its_dead_letter_settled(
    hub, sim, connection_id
):
    from datetime import timedelta

    from hub.services.sync import push_changes
    from hub.store.models import DeadLetter
    from jobs.queue import DatabaseQueue
    from jobs.relay import relay

    sim.create(
        "contacts", {"email": "anna.berg@example.dk", "firstname": "Anna", "lastname": "Berg"}, webhooks=False
    )
    customer = factories.customer(hub, "Anna Berg", email="Anna.Berg@example.dk ")
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    assert push_changes(hub, connection_id, "customer").dead_lettered == 1  # HubSpot: the contact exists

    done = customers_of(reconcile(hub, connection_id))
    assert (done.linked_by_key, done.created_remotely, done.failed) == ({"email": 1}, 0, 0)
    assert linked_remote(hub, customer.id) == sim.records("contacts")[0]["id"]
    assert len(sim.records("contacts")) == 1
    with hub.session_factory() as session:
        assert session.scalars(select(DeadLetter).where(DeadLetter.resolved_at.is_(None))).all() == []
