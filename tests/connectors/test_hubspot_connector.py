"""The HubSpot connector against the HubSpot simulator: a real HTTP conversation."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from connectors.base import ConnectorContext, WebhookRejected, WriteItem
from connectors.errors import AuthError
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.simulator import HubSpotSimulator


def connector(sim: HubSpotSimulator, **config: Any) -> HubSpotConnector:
    settings = {
        "base_url": sim.base_url,
        "access_token": sim.token,
        "client_secret": sim.client_secret,
        **config,
    }
    return HubSpotConnector(settings, ConnectorContext(timeout_seconds=5))


def items(n: int, start: int = 0, **extra: Any) -> list[WriteItem]:
    return [
        WriteItem(
            local_id=f"cus_{i:04d}",
            properties={"email": f"kunde{i}@example.dk", "firstname": f"Kunde {i}", **extra},
            idempotency_key=f"k{i}",
        )
        for i in range(start, start + n)
    ]


def test_check_and_a_wrong_token(sim):
    connector(sim).check()
    with pytest.raises(AuthError):
        connector(sim, access_token="pat-na1-wrong").check()


def test_custom_properties_are_created_once(sim):
    hubspot = connector(sim)
    created = hubspot.ensure_properties()
    assert "contacts.abohub_id" in created and "contacts.abohub_mrr" in created
    assert hubspot.ensure_properties() == []


def test_the_first_write_to_a_portal_without_abohub_s_properties_creates_them(sim):
    """A connection added in the admin or the API has never run ensure_properties: HubSpot refuses
    the unknown abohub_* properties once, the connector creates them and writes again."""
    hubspot = connector(sim)
    results = hubspot.write_batch("contacts", items(3, abohub_mrr="149.00"))
    assert all(r.ok for r in results), [str(r.error) for r in results]
    assert sim.get("contacts", results[0].remote_id)["properties"]["abohub_mrr"] == "149.00"
    assert hubspot.ensure_properties() == []  # all there now
    unknown = hubspot.write_batch("contacts", [WriteItem("cus_x", {"no_such_thing": "1"}, "kx")])
    assert not unknown[0].ok and "no_such_thing" in str(unknown[0].error)  # not ours to create


def test_batch_upsert_in_hundreds_without_duplicates(sim):
    hubspot = connector(sim)
    hubspot.ensure_properties()
    first = hubspot.write_batch("contacts", items(150))
    assert all(r.ok for r in first) and len({r.remote_id for r in first}) == 150
    assert sim.stats.count(method="POST", template="/crm/v3/objects/{object_type}/batch/upsert") == 2
    again = hubspot.write_batch("contacts", items(150, firstname="Ændret"))
    assert [r.remote_id for r in again] == [r.remote_id for r in first]
    assert len(sim.records("contacts")) == 150
    assert sim.get("contacts", first[0].remote_id)["properties"]["firstname"] == "Ændret"


def test_one_bad_record_does_not_hold_back_the_others(sim):
    hubspot = connector(sim)
    hubspot.ensure_properties()
    batch = items(9)
    batch[4] = WriteItem("cus_bad", {"email": "not an email"}, "kbad")
    results = hubspot.write_batch("contacts", batch)
    assert [r.ok for r in results] == [True] * 4 + [False] + [True] * 4
    assert "cus_bad" in str(results[4].error) or "email" in str(results[4].error).lower()


def test_read_one_and_a_missing_one(sim):
    hubspot = connector(sim)
    remote_id = sim.create("contacts", {"email": "a@example.dk", "firstname": "Anna"})
    record = hubspot.read("contacts", remote_id)
    assert record is not None and record.properties["email"] == "a@example.dk" and record.updated_at
    assert hubspot.read("contacts", "999999999") is None


def test_incremental_reads_never_drop_or_repeat_records_sharing_a_timestamp(sim):
    hubspot = connector(sim)
    same = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    ids = [sim.create("contacts", {"email": f"k{i}@example.dk"}, webhooks=False) for i in range(7)]
    for remote_id in ids:
        sim.edit("contacts", remote_id, {"firstname": "Samme"}, at=same)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = hubspot.read_changes("contacts", cursor, limit=3)
        seen += [r.id for r in page.records]
        cursor = page.cursor
        if not page.has_more:
            break
    assert sorted(seen) == sorted(ids)
    assert hubspot.read_changes("contacts", cursor).records == []
    sim.edit("contacts", ids[2], {"firstname": "Ny"}, at=same + 1000)
    later = hubspot.read_changes("contacts", cursor)
    assert [r.id for r in later.records] == [ids[2]]


class Receiver:
    """A webhook endpoint that keeps what it was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks/con_1?x=1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @Request.application
    def app(self, request: Request) -> Response:
        self.received.append((request.method, request.url, dict(request.headers), request.get_data()))
        return Response("", 200)


def test_webhooks_verify_and_parse(sim):
    receiver = Receiver()
    try:
        with HubSpotSimulator(webhook_urls=[receiver.url], webhook_mode="manual") as live:
            hubspot = connector(live)
            remote_id = live.create("contacts", {"email": "b@example.dk"})
            live.edit("contacts", remote_id, {"firstname": "Bo"})
            live.flush_webhooks()
            method, url, headers, body = receiver.received[-1]
            now = datetime.now(UTC)
            hubspot.verify_webhook(method, url, headers, body, now)
            events = hubspot.parse_webhook(body)
            assert {(e.object_type, e.remote_id) for e in events} == {("contacts", remote_id)}
            assert any(e.action == "updated" and e.properties == {"firstname": "Bo"} for e in events)
            with pytest.raises(WebhookRejected, match="signature"):
                hubspot.verify_webhook(method, url, headers, body.replace(b"Bo", b"Eve"), now)
            with pytest.raises(WebhookRejected, match="five minutes"):
                hubspot.verify_webhook(method, url, headers, body, now + timedelta(minutes=6))
            with pytest.raises(WebhookRejected):
                hubspot.verify_webhook(method, url, {}, body, now)
            with pytest.raises(WebhookRejected, match="JSON"):
                hubspot.parse_webhook(b"{not json")
    finally:
        receiver.server.shutdown()


def test_oauth_tokens_are_refreshed_and_handed_back_to_be_stored(sim):
    code = sim.authorize("http://127.0.0.1/callback")
    tokens = requests.post(
        f"{sim.base_url}/oauth/v1/token",
        data={
            "grant_type": "authorization_code",
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "redirect_uri": "http://127.0.0.1/callback",
            "code": code,
        },
        timeout=5,
    ).json()
    saved: list[dict[str, Any]] = []
    hubspot = HubSpotConnector(
        {
            "base_url": sim.base_url,
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "refresh_token": tokens["refresh_token"],
            "access_token": tokens["access_token"],
        },
        ConnectorContext(timeout_seconds=5, save_credentials=saved.append),
    )
    hubspot.check()
    sim.expire_tokens()
    hubspot.check()
    assert len(saved) == 1 and saved[0]["access_token"] != tokens["access_token"]
    assert tokens["access_token"] not in repr(saved[0]["access_token"])


def test_transient_faults_are_ridden_out(sim):
    hubspot = connector(sim)
    sim.faults.add("http_503", count=2, path="/crm/v3/objects/contacts")
    hubspot.check()
    assert sim.stats.count(method="GET", template="/crm/v3/objects/{object_type}") == 3


BATCH_READ = "/crm/v3/objects/{object_type}/batch/read"


def test_read_many_reads_a_hundred_per_request_and_leaves_out_what_is_missing(sim):
    hubspot = connector(sim)
    ids = sim.create_many(
        "contacts", [{"email": f"k{i}@example.dk", "firstname": f"K{i}"} for i in range(150)]
    )
    sim.delete("contacts", ids[7])
    wanted = [*ids, ids[3], "999999999"]  # a repeat and an id HubSpot never had
    found = hubspot.read_many("contacts", wanted)
    assert sorted(found) == sorted(set(ids) - {ids[7]})
    assert found[ids[42]].properties["email"] == "k42@example.dk" and found[ids[42]].updated_at
    assert sim.stats.count(method="POST", template=BATCH_READ) == 2
    assert sim.stats.count(method="GET", template="/crm/v3/objects/{object_type}/{object_id}") == 0
    assert hubspot.read_many("contacts", []) == {}


def test_the_contracts_default_read_many_gives_the_same_records_one_read_at_a_time(sim):
    from connectors.base import Connector

    hubspot = connector(sim)
    ids = sim.create_many("contacts", [{"email": f"d{i}@example.dk"} for i in range(3)])
    one_by_one = Connector.read_many(hubspot, "contacts", [*ids, "999999999"])
    assert one_by_one == hubspot.read_many("contacts", ids)
    assert sim.stats.count(method="GET", template="/crm/v3/objects/{object_type}/{object_id}") == 4


def test_a_write_whose_answer_timed_out_is_reported_unanswered_even_when_its_retry_went_through(sim):
    hubspot = HubSpotConnector(
        {"base_url": sim.base_url, "access_token": sim.token, "client_secret": sim.client_secret},
        ConnectorContext(timeout_seconds=1),
    )
    hubspot.ensure_properties()
    created = hubspot.write_batch("contacts", items(2))
    assert [r.unanswered for r in created] == [False, False]
    linked = [replace(item, remote_id=r.remote_id) for item, r in zip(items(2), created, strict=True)]
    sim.faults.add("timeout", 1, path=r"/batch/update$", seconds=2.0, apply=True)  # held past the 1 s

    updated = hubspot.write_batch("contacts", [replace(i, properties={"firstname": "Ny"}) for i in linked])

    assert [(r.ok, r.unanswered) for r in updated] == [(True, True), (True, True)]  # the retry landed
    assert sim.get("contacts", created[0].remote_id)["properties"]["firstname"] == "Ny"
    again = hubspot.write_batch("contacts", [replace(i, properties={"firstname": "Igen"}) for i in linked])
    assert [r.unanswered for r in again] == [False, False]
