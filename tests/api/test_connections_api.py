"""Connectors and connections through the REST API, against the HubSpot simulator."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from hub.domain.ids import new_id
from hub.services import customers
from hub.services.connections import open_connector
from hub.services.sync import push_changes
from hub.store.models import Conflict, DeadLetter, Event
from jobs.queue import DatabaseQueue
from jobs.relay import relay
from tests import factories


def config(sim, **extra):  # type: ignore[no-untyped-def]
    return {"base_url": sim.base_url, "access_token": sim.token, "client_secret": sim.client_secret, **extra}


@pytest.fixture
def connection(api, sim, hub) -> dict:  # type: ignore[no-untyped-def]
    status, body = api.post(
        "/connections", {"connector": "hubspot", "name": "HubSpot", "config": config(sim)}
    )
    assert status == 201, body
    open_connector(hub.uow(), body["id"]).ensure_properties()
    return body


def events(hub, kind: str) -> list[Event]:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return list(session.scalars(select(Event).where(Event.type == kind).order_by(Event.id)))


def test_installed_connectors_describe_their_config_form(api):
    status, body = api.get("/connectors")
    assert status == 200
    hubspot = next(c for c in body["data"] if c["name"] == "hubspot")
    assert (hubspot["title"], hubspot["kind"]) == ("HubSpot", "crm")
    assert {"webhooks", "batch_upsert"} <= set(hubspot["capabilities"])
    assert {(o["name"], o["local"], tuple(o["directions"])) for o in hubspot["object_types"]} >= {
        ("contacts", "customer", ("both",)),
        ("deals", "subscription", ("push",)),
    }
    form = {f["name"]: f for f in hubspot["config"]}
    assert form["client_secret"]["required"] and form["client_secret"]["secret"]
    assert form["client_secret"]["description"]
    assert form["access_token"]["secret"] and not form["access_token"]["required"]
    assert form["base_url"]["type"] == "url" and form["base_url"]["default"] == "https://api.hubapi.com"
    assert form["requests_per_ten_seconds"]["type"] == "integer"
    assert form["requests_per_ten_seconds"]["maximum"] == 10_000


def test_a_bad_config_is_named_field_by_field(api, sim, hub):
    status, body = api.post(
        "/connections",
        {
            "connector": "hubspot",
            "name": "HubSpot",
            "config": {"base_url": sim.base_url, "access_token": "x"},
        },
    )
    assert status == 422
    assert "config.client_secret" in body["error"]["fields"]
    status, body = api.post("/connections", {"connector": "nosuch", "name": "X", "config": {}})
    assert status == 422 and "connector" in body["error"]["fields"]
    status, body = api.post("/connections", {"connector": "hubspot", "config": config(sim)})
    assert status == 422 and "name" in body["error"]["fields"]
    assert events(hub, "connection.created") == []


def test_a_connection_shows_its_webhook_url_health_and_never_its_secrets(api, sim, hub, connection):
    assert connection["config"]["access_token"] == "***"
    assert connection["config"]["client_secret"] == "***"
    assert connection["config"]["base_url"] == sim.base_url
    assert connection["webhook_url"] == f"http://localhost/webhooks/{connection['id']}"
    assert "customer" in connection["object_types"]  # the connector's default mappings come with it
    assert connection["enabled"] is True
    assert connection["health"] == {
        "linked": 0,
        "last_pushed_at": None,
        "last_pulled_at": None,
        "pending": 0,
        "retrying": 0,
        "open_conflicts": 0,
        "open_dead_letters": 0,
    }
    status, listed = api.get("/connections")
    assert status == 200 and [c["id"] for c in listed["data"]] == [connection["id"]]
    status, one = api.get(f"/connections/{connection['id']}")
    assert status == 200 and one == connection
    everything = json.dumps([listed, one, [e.data for e in events(hub, "connection.created")]])
    assert sim.token not in everything and sim.client_secret not in everything
    assert api.get("/connections/con_00000000000000000000000000")[0] == 404


def test_patch_changes_only_what_it_names_and_is_audited(api, sim, hub, connection):
    path = f"/connections/{connection['id']}"
    status, body = api.patch(path, {"config": {"requests_per_ten_seconds": 50}})
    assert status == 200, body
    # Fields left out keep their values: the simulator is still the base URL, the secrets still work.
    assert body["config"]["base_url"] == sim.base_url
    assert body["config"]["requests_per_ten_seconds"] == 50
    assert api.post(f"{path}/test")[1]["ok"] is True
    audited = events(hub, "connection.updated")[-1].data
    assert audited["before"]["config"]["requests_per_ten_seconds"] == 190
    assert audited["after"]["config"]["requests_per_ten_seconds"] == 50
    assert audited["after"]["config"]["access_token"] == "***" and sim.token not in json.dumps(audited)
    # A secret sent back as "***" (as GET shows it) keeps its stored value too.
    status, body = api.patch(path, {"config": {**body["config"], "searches_per_second": 2}})
    assert status == 200 and api.post(f"{path}/test")[1]["ok"] is True

    status, body = api.patch(path, {"name": "HubSpot (sales)", "enabled": False})
    assert status == 200 and (body["name"], body["enabled"]) == ("HubSpot (sales)", False)
    last = events(hub, "connection.updated")[-1]
    assert last.data["before"] == {"name": "HubSpot", "enabled": True}
    assert last.data["after"] == {"name": "HubSpot (sales)", "enabled": False}
    assert last.actor.startswith("api_key:")

    status, body = api.patch(path, {"config": {"requests_per_ten_seconds": 0}})
    assert status == 422 and "config.requests_per_ten_seconds" in body["error"]["fields"]
    assert api.patch(path, {})[0] == 422


def test_the_connection_test_reports_what_is_wrong_without_leaking_secrets(api, sim, connection):
    path = f"/connections/{connection['id']}"
    status, body = api.post(f"{path}/test")
    assert status == 200 and body["ok"] is True and body["error_type"] is None

    wrong = "pat-na1-wrong-token-0123456789"
    api.patch(path, {"config": {"access_token": wrong}})
    status, body = api.post(f"{path}/test")
    assert status == 200, body
    assert (body["ok"], body["error_type"], body["vendor_status"], body["retriable"]) == (
        False,
        "auth",
        401,
        False,
    )
    assert wrong not in json.dumps(body)

    api.patch(path, {"config": {"access_token": sim.token}})
    sim.faults.add("malformed", count=None)
    status, body = api.post(f"{path}/test")
    assert status == 200 and (body["ok"], body["error_type"]) == (False, "malformed_response")


def test_a_vendor_that_is_down_is_a_failed_test_not_a_server_error(api, sim, connection):
    sim.faults.add("http_503", count=None)
    status, body = api.post(f"/connections/{connection['id']}/test")
    assert status == 200, body
    assert (body["ok"], body["error_type"], body["vendor_status"], body["retriable"]) == (
        False,
        "unavailable",
        503,
        True,
    )
    assert sim.token not in json.dumps(body)


def test_health_counts_links_pending_work_conflicts_and_dead_letters(api, sim, hub, connection):
    connection_id = connection["id"]
    first = factories.customer(hub, "Karen Jensen")
    factories.customer(hub, "Ole Olsen")
    queue = DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5))
    relay(hub, queue)
    assert push_changes(hub, connection_id, "customer").pushed == 2

    customers.update_customer(customers.UpdateCustomer(first.id, {"vat_number": "DK11223344"}), hub.uow())
    relay(hub, queue)
    with hub.session_factory() as session, session.begin():
        session.add(
            Conflict(
                id=new_id("cf"),
                connection_id=connection_id,
                object_type="customer",
                local_id=first.id,
                field="firstname+lastname",
                remote_field="firstname,lastname",
                hub_value={"name": "Karen Hansen"},
                remote_value={"name": "Karen Olsen"},
                status="open",
                created_at=hub.clock.now(),
            )
        )
        session.add(
            DeadLetter(
                id=new_id("dl"),
                connection_id=connection_id,
                object_type="customer",
                local_id=first.id,
                operation="push",
                idempotency_key="k",
                reason="HubSpot refused it",
                attempts=1,
                created_at=hub.clock.now(),
            )
        )
    status, body = api.get(f"/connections/{connection_id}")
    assert status == 200
    health = body["health"]
    assert (health["linked"], health["pending"], health["retrying"]) == (2, 1, 0)
    assert (health["open_conflicts"], health["open_dead_letters"]) == (1, 1)
    assert health["last_pushed_at"] == hub.clock.now().isoformat() and health["last_pulled_at"] is None


def test_delete_needs_a_disabled_connection_and_removes_what_was_kept_for_it(api, hub, connection):
    path = f"/connections/{connection['id']}"
    response = api.client.delete(f"/api/v1{path}", headers=api.headers)
    assert response.status_code == 409
    api.patch(path, {"enabled": False})
    response = api.client.delete(f"/api/v1{path}", headers=api.headers)
    assert response.status_code == 204
    assert api.get(path)[0] == 404
    assert api.get(f"{path}/mappings")[0] == 404
    [deleted] = events(hub, "connection.deleted")
    assert deleted.data["removed"]["mappings"] == len(connection["object_types"])


def test_creating_with_an_idempotency_key_creates_once(api, sim, hub):
    body = {"connector": "hubspot", "name": "HubSpot", "config": config(sim)}
    headers = {"Idempotency-Key": "create-hubspot-1"}
    first = api.post("/connections", body, headers)
    again = api.post("/connections", body, headers)
    assert first[0] == again[0] == 201 and first[1]["id"] == again[1]["id"]
    assert len(api.get("/connections")[1]["data"]) == 1
