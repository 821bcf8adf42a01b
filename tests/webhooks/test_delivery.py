"""Real signed webhooks from the HubSpot simulator to the app on a real HTTP server."""

from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import select

from connectors.hubspot.simulator import HubSpotSimulator
from hub.store.models import JobRun, WebhookReceipt
from tests.webhooks.conftest import CLIENT_SECRET, counts, signed_headers


def test_a_signed_delivery_is_stored_once_per_event_and_queues_one_job(hub, connection, sim):
    contact = sim.create("contacts", {"email": "ann@example.com", "firstname": "Ann", "lastname": "Lee"})
    before = counts(hub)
    started = time.perf_counter()
    [delivery] = sim.flush_webhooks()
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(f"\nsimulator delivery of {len(delivery.event_ids)} events answered in {elapsed_ms:.1f} ms")

    assert delivery.status == 200, delivery
    assert len(delivery.event_ids) >= 3  # a creation and one change per property
    after = counts(hub)
    assert after["webhook_receipts"] == before["webhook_receipts"] + len(delivery.event_ids)
    assert after["events"] == before["events"] and after["outbox"] == before["outbox"]
    assert after["job_runs"] == before["job_runs"] + 1

    with hub.session_factory() as session:
        receipts = session.scalars(select(WebhookReceipt).order_by(WebhookReceipt.id)).all()
        [job] = session.scalars(select(JobRun)).all()
    assert sorted(r.event_id for r in receipts) == sorted(str(i) for i in delivery.event_ids)
    assert {r.connection_id for r in receipts} == {connection.id}
    assert all(r.processed_at is None for r in receipts)
    creation = next(r for r in receipts if r.payload["action"] == "created")
    assert creation.payload["object_type"] == "contacts" and creation.payload["remote_id"] == contact
    assert creation.payload["raw"]["subscriptionType"] == "contact.creation"
    change = next(r for r in receipts if r.payload["properties"].get("firstname"))
    assert change.payload["properties"] == {"firstname": "Ann"} and change.payload["action"] == "updated"
    assert (job.id, job.function, job.args, job.status) == (
        f"webhooks:{connection.id}",
        "process_webhooks",
        {"connection_id": connection.id},
        "queued",
    )


def test_the_same_delivery_again_is_200_and_stores_nothing_new(hub, endpoint):
    with HubSpotSimulator(
        client_secret=CLIENT_SECRET,
        webhook_urls=[endpoint],
        webhook_mode="manual",
        webhook_retry_delays=(),
        webhook_duplicates=True,
    ) as sim:
        sim.create("contacts", {"email": "bo@example.com", "firstname": "Bo"})
        first, duplicate = sim.flush_webhooks()
    assert duplicate.duplicate and duplicate.body == first.body
    assert (first.status, duplicate.status) == (200, 200)
    stored = counts(hub)
    assert stored["webhook_receipts"] == len(first.event_ids) and stored["job_runs"] == 1

    # The captured request replayed byte for byte (within the signature's window): still once.
    replay = requests.post(endpoint, data=first.body, headers=first.headers, timeout=5)
    assert replay.status_code == 200
    assert replay.json() == {
        "received": len(first.event_ids),
        "stored": 0,
        "duplicates": len(first.event_ids),
    }
    assert counts(hub) == stored


def test_a_bad_signature_is_401_and_stores_nothing(hub, endpoint, sim):
    sim.create("contacts", {"email": "cy@example.com", "firstname": "Cy"})
    [delivery] = sim.flush_webhooks()
    before = counts(hub)

    tampered = delivery.body.replace(b'"Cy"', b'"Mallory"')
    assert tampered != delivery.body
    response = requests.post(endpoint, data=tampered, headers=delivery.headers, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "unauthorized"
    assert set(response.json()["error"]) == {"type", "message", "fields"}

    wrong_secret = signed_headers(endpoint, tampered, secret="not-the-client-secret")
    assert requests.post(endpoint, data=tampered, headers=wrong_secret, timeout=5).status_code == 401
    unsigned = {"Content-Type": "application/json"}
    assert requests.post(endpoint, data=tampered, headers=unsigned, timeout=5).status_code == 401
    assert counts(hub) == before


def test_a_simulator_with_another_secret_is_refused(hub, endpoint):
    before = counts(hub)
    with HubSpotSimulator(
        client_secret="someone-elses-secret",
        webhook_urls=[endpoint],
        webhook_mode="manual",
        webhook_retry_delays=(),
    ) as sim:
        sim.create("contacts", {"email": "eve@example.com", "firstname": "Eve"})
        [delivery] = sim.flush_webhooks()
    assert delivery.status == 401
    assert counts(hub) == before


def test_a_stale_timestamp_is_401_and_stores_nothing(hub, sim):
    before = counts(hub)
    sim.webhooks.timestamp_skew_ms = -301_000  # signed correctly, five minutes and a second ago
    sim.create("contacts", {"email": "di@example.com", "firstname": "Di"})
    [delivery] = sim.flush_webhooks()
    assert delivery.status == 401
    assert counts(hub) == before


def test_a_body_over_the_limit_is_413_also_when_chunked(hub, endpoint):
    before = counts(hub)
    body = b"[" + b" " * (256 * 1024) + b"]"
    response = requests.post(endpoint, data=body, headers=signed_headers(endpoint, body), timeout=5)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "too_large"

    def chunks():  # no Content-Length: the limit must hold while reading
        yield b"["
        for _ in range(64):
            yield b" " * 8192
        yield b"]"

    response = requests.post(endpoint, data=chunks(), headers=signed_headers(endpoint, body), timeout=5)
    assert response.status_code == 413
    assert counts(hub) == before


def test_a_valid_webhook_is_answered_in_milliseconds(hub, endpoint):
    """Measured, not asserted: verify + store + queue + answer, through a real HTTP server."""
    times = []
    with requests.Session() as session:
        for n in range(40):
            body = json.dumps(
                [
                    {
                        "eventId": 10_000 + n * 10 + k,
                        "subscriptionType": "contact.propertyChange",
                        "objectId": 500 + n,
                        "propertyName": "firstname",
                        "propertyValue": f"Name {n}",
                        "occurredAt": int(time.time() * 1000),
                        "changeSource": "CRM_UI",
                    }
                    for k in range(10)
                ],
                separators=(",", ":"),
            ).encode()
            headers = signed_headers(endpoint, body)
            started = time.perf_counter()
            response = session.post(endpoint, data=body, headers=headers, timeout=5)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
    assert counts(hub)["webhook_receipts"] == 400
    warm = sorted(times[1:])
    print(
        f"\n{hub.settings.database_url.split(':', 1)[0]}: first {times[0]:.1f} ms (opens the connector), "
        f"then median {statistics.median(warm):.1f} ms, p90 {warm[int(len(warm) * 0.9)]:.1f} ms, "
        f"max {warm[-1]:.1f} ms for 10 events per delivery"
    )


def test_concurrent_overlapping_deliveries_store_each_event_once(hub, endpoint):
    """Vendors retry while the first attempt is still running: every answer is 200, each event once."""
    forward = [
        {
            "eventId": n,
            "subscriptionType": "contact.propertyChange",
            "objectId": n,
            "propertyName": "firstname",
        }
        for n in range(1, 41)
    ]
    bodies = [
        json.dumps(forward).encode(),
        json.dumps(forward[::-1]).encode(),
        json.dumps(forward[10:30]).encode(),
    ]
    requests_to_send = [bodies[n % 3] for n in range(12)]
    barrier = threading.Barrier(len(requests_to_send))

    def deliver(body: bytes) -> int:
        headers = signed_headers(endpoint, body)
        barrier.wait()
        return requests.post(endpoint, data=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(len(requests_to_send)) as pool:
        statuses = list(pool.map(deliver, requests_to_send))
    assert statuses == [200] * len(requests_to_send)
    assert counts(hub)["webhook_receipts"] == 40
    assert counts(hub)["job_runs"] == 1
