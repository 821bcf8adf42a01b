"""The operator's sync commands (connectors, connections, mappings, conflicts, dead letters) on a real hub."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from hub import cli
from hub.services import customers
from hub.services.connections import open_connector
from hub.services.crypto import generate_key
from hub.services.sync import push_changes
from hub.store.models import Conflict, Customer, DeadLetter
from jobs.queue import DatabaseQueue
from jobs.relay import relay
from tests import factories
from tests.conftest import make_hub, wipe


@pytest.fixture
def hub(database, monkeypatch):  # type: ignore[no-untyped-def]
    instance = make_hub(database, encryption_keys=(generate_key(),))
    wipe(instance)
    monkeypatch.setattr(cli, "_hub", lambda: instance)
    yield instance
    instance.close()


def abohub(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli.main, list(args), input=input)


@pytest.fixture
def connection_id(hub, sim) -> str:  # type: ignore[no-untyped-def]
    created = abohub(
        "connections", "create", "--connector", "hubspot", "--name", "HubSpot", "--json",
        "--set", f"base_url={sim.base_url}", "--set", f"access_token={sim.token}",
        "--set", f"client_secret={sim.client_secret}",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    found = json.loads(created.output)["id"]
    open_connector(hub.uow(), found).ensure_properties()
    return found


def sync_out(hub, connection_id):  # type: ignore[no-untyped-def]
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    return push_changes(hub, connection_id, "customer")


def test_connectors_are_listed_with_their_object_types_and_config(hub):
    result = abohub("connectors", "list")
    assert result.exit_code == 0
    assert "hubspot  HubSpot (crm)" in result.output
    assert "contacts ↔ customer: both" in result.output
    assert "config client_secret (string, required, secret)" in result.output
    listed = json.loads(abohub("connectors", "list", "--json").output)
    assert "hubspot" in [c["name"] for c in listed]


def test_connections_lifecycle_with_secrets_hidden(hub, sim, tmp_path: Path):
    refused = abohub(
        "connections", "create", "--connector", "hubspot", "--name", "X", "--set", "access_token=t"
    )
    assert refused.exit_code == 1
    assert "config.client_secret" in refused.output and "Traceback" not in refused.output

    config = tmp_path / "hubspot.json"
    config.write_text(json.dumps({"base_url": sim.base_url, "client_secret": sim.client_secret}))
    created = abohub(
        "connections", "create", "--connector", "hubspot", "--name", "HubSpot",
        "--config", str(config), "--set", f"access_token={sim.token}", "--base-url", "https://abohub.example.dk",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    connection_id = created.output.split()[0]
    assert f"webhook URL:  https://abohub.example.dk/webhooks/{connection_id}" in created.output
    assert "config client_secret = ***" in created.output and sim.client_secret not in created.output

    listed = abohub("connections", "list")
    assert connection_id in listed.output and "linked 0, pending 0" in listed.output
    updated = abohub("connections", "update", connection_id, "--set", "requests_per_ten_seconds=50", "--json")
    assert updated.exit_code == 0, updated.output
    shown = json.loads(updated.output)
    assert shown["config"]["requests_per_ten_seconds"] == 50 and shown["config"]["base_url"] == sim.base_url
    assert sim.token not in updated.output

    tested = abohub("connections", "test", connection_id)
    assert tested.exit_code == 0 and tested.output.startswith("ok")
    abohub("connections", "update", connection_id, "--set", "access_token=pat-na1-not-a-real-token")
    tested = abohub("connections", "test", connection_id)
    assert tested.exit_code == 1 and "auth:" in tested.output and "not-a-real-token" not in tested.output

    assert abohub("connections", "delete", connection_id, "--yes").exit_code == 1  # still enabled
    assert abohub("connections", "disable", connection_id).exit_code == 0
    assert "off" in abohub("connections", "list").output
    assert abohub("connections", "delete", connection_id, "--yes").exit_code == 0
    missing = abohub("connections", "show", connection_id)
    assert missing.exit_code == 1 and f"no connection {connection_id}" in missing.output


def test_mappings_show_validate_set_and_preview(hub, sim, connection_id, tmp_path: Path):
    customer = factories.customer(hub, "Karen Jensen")
    sync_out(hub, connection_id)
    listed = abohub("mappings", "list", connection_id)
    assert (
        "customer ↔ contacts  (version 1)" in listed.output and "name ↔ firstname+lastname" in listed.output
    )
    definition = json.loads(abohub("mappings", "show", connection_id, "customer").output)

    name = next(i for i, f in enumerate(definition["fields"]) if f.get("local") == "name")
    broken = json.loads(json.dumps(definition))
    del broken["fields"][name]["policy"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    refused = abohub("mappings", "validate", connection_id, "customer", str(tmp_path / "broken.json"))
    assert refused.exit_code == 1 and f"fields.{name}.policy" in refused.output
    assert abohub("mappings", "set", connection_id, "customer", str(tmp_path / "broken.json")).exit_code == 1

    status = next(i for i, f in enumerate(definition["fields"]) if f.get("local") == "revenue_state")
    definition["fields"][status]["to_remote"][0]["values"]["none"] = "Lead"
    edited = json.dumps(definition)
    checked = abohub("mappings", "validate", connection_id, "customer", "-", input=edited)
    assert checked.exit_code == 0 and checked.output.startswith("valid")
    assert "1 linked record(s) would be pushed again" in checked.output

    previewed = abohub(
        "mappings", "preview", connection_id, "customer", customer.id, "--file", "-", input=edited
    )
    assert previewed.exit_code == 0, previewed.output
    assert 'abohub_status = "Lead"' in previewed.output
    assert "differs abohub_status: hub 'Lead', remote 'Prospect'" in previewed.output
    assert 'a sync now would push {"abohub_status": "Lead"}' in previewed.output
    as_json = json.loads(
        abohub("mappings", "preview", connection_id, "customer", customer.id, "--json").output
    )
    assert as_json["linked"] is True and as_json["properties"]["abohub_status"] == "Prospect"

    saved = abohub("mappings", "set", connection_id, "customer", "-", input=edited)
    assert saved.exit_code == 0, saved.output
    assert "version 2" in saved.output and "1 linked record(s) queued" in saved.output
    assert push_changes(hub, connection_id, "customer").pushed == 1
    assert sim.records("contacts")[0]["properties"]["abohub_status"] == "Lead"
    assert (
        "unchanged (version 2)"
        in abohub("mappings", "set", connection_id, "customer", "-", input=edited).output
    )

    missing = abohub("mappings", "preview", connection_id, "customer", "cus_00000000000000000000000000")
    assert missing.exit_code == 1 and "local_id" in missing.output


def test_conflicts_are_listed_and_resolved(hub, sim, connection_id):
    customer = factories.customer(hub, "Karen Jensen")
    sync_out(hub, connection_id)
    with hub.session_factory() as session:
        from hub.store.models import Link

        remote_id = session.scalar(select(Link.remote_id).where(Link.local_id == customer.id))
    sim.edit("contacts", remote_id, {"lastname": "Olsen"})
    customers.update_customer(customers.UpdateCustomer(customer.id, {"name": "Karen Hansen"}), hub.uow())
    assert sync_out(hub, connection_id).conflicts == 1
    with hub.session_factory() as session:
        conflict_id = session.scalar(select(Conflict.id))

    listed = abohub("conflicts", "list")
    assert (
        conflict_id in listed.output
        and "firstname+lastname" in listed.output
        and "Karen Olsen" in listed.output
    )
    assert abohub("conflicts", "resolve", conflict_id, "--use", "value").exit_code == 2  # needs --value
    resolved = abohub("conflicts", "resolve", conflict_id, "--use", "remote")
    assert resolved.exit_code == 0, resolved.output
    assert "Karen Olsen" in resolved.output
    with hub.session_factory() as session:
        assert session.get(Customer, customer.id).name == "Karen Olsen"
    assert "no open conflicts" in abohub("conflicts", "list").output
    again = abohub("conflicts", "resolve", conflict_id, "--use", "hub")
    assert again.exit_code == 1 and "already resolved" in again.output
    assert (
        json.loads(abohub("conflicts", "list", "--status", "all", "--json").output)[0]["resolution"]
        == "remote"
    )


def test_dead_letters_are_listed_and_replayed(hub, sim, connection_id, tmp_path: Path):
    definition = json.loads(abohub("mappings", "show", connection_id, "customer").output)
    definition["fields"].append(
        {"local": "locale", "remote": "no_such_property", "direction": "push", "to_remote": []}
    )
    (tmp_path / "bad.json").write_text(json.dumps(definition))
    assert abohub("mappings", "set", connection_id, "customer", str(tmp_path / "bad.json")).exit_code == 0
    customer = factories.customer(hub, "Karen Jensen")
    assert sync_out(hub, connection_id).dead_lettered == 1
    with hub.session_factory() as session:
        letter_id = session.scalar(select(DeadLetter.id))

    listed = abohub("dead-letters", "list")
    assert letter_id in listed.output and customer.id in listed.output and "no_such_property" in listed.output
    replayed = abohub("dead-letters", "replay", letter_id, "dl_00000000000000000000000000")
    assert replayed.exit_code == 1 and f"replaying {letter_id}" in replayed.output
    assert "1 of 2 could not be replayed" in replayed.output

    definition["fields"].pop()
    (tmp_path / "fixed.json").write_text(json.dumps(definition))
    assert abohub("mappings", "set", connection_id, "customer", str(tmp_path / "fixed.json")).exit_code == 0
    assert push_changes(hub, connection_id, "customer").pushed == 1
    assert "no unresolved dead letters" in abohub("dead-letters", "list").output
    assert json.loads(abohub("dead-letters", "list", "--all", "--json").output)[0]["resolved_at"]
