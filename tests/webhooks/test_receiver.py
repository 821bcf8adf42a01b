"""Precise cases through the Flask test client: statuses, bodies, what is stored, caching, queries."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from hub.services.connections import UpdateConnection, update_connection
from hub.store.models import JobRun, WebhookReceipt
from hub.webhooks import EXTENSION, PROCESSING
from hub.webhooks.processing import ProcessingQueue
from hub.webhooks.receiver import vendor_url
from tests.webhooks.conftest import CLIENT_SECRET, counts, signed_headers

BASE = "http://localhost"


def events(*ids: int, object_id: int = 7, value: str = "Ann") -> bytes:
    return json.dumps(
        [
            {
                "eventId": i,
                "subscriptionId": 100_001,
                "portalId": 62515,
                "appId": 1160452,
                "occurredAt": 1768467600000,
                "subscriptionType": "contact.propertyChange",
                "attemptNumber": 0,
                "objectId": object_id,
                "changeSource": "CRM_UI",
                "propertyName": "firstname",
                "propertyValue": value,
            }
            for i in ids
        ],
        separators=(",", ":"),
    ).encode()


def post(client, path: str, body: bytes, **kwargs):  # type: ignore[no-untyped-def]
    headers = kwargs.pop("headers", None) or signed_headers(BASE + path, body, **kwargs)
    return client.post(path, data=body, headers=headers)


def test_valid_events_are_stored_and_answered_with_a_tiny_body(hub, client, path, connection):
    response = post(client, path, events(1, 2, 3))
    assert response.status_code == 200
    assert response.get_json() == {"received": 3, "stored": 3, "duplicates": 0}
    assert len(response.data) < 100
    with hub.session_factory() as session:
        receipts = session.scalars(select(WebhookReceipt).order_by(WebhookReceipt.event_id)).all()
        job = session.get(JobRun, f"webhooks:{connection.id}")
    assert [r.event_id for r in receipts] == ["1", "2", "3"]
    assert receipts[0].payload == {
        "event_id": "1",
        "object_type": "contacts",
        "remote_id": "7",
        "action": "updated",
        "occurred_at": "2026-01-15T09:00:00+00:00",
        "properties": {"firstname": "Ann"},
        "raw": json.loads(events(1))[0],
    }
    assert receipts[0].received_at == hub.clock.now()
    assert job is not None and job.function == "process_webhooks" and job.status == "queued"


def test_duplicates_are_ignored_within_and_across_deliveries(hub, client, path):
    assert post(client, path, events(1, 2)).get_json() == {"received": 2, "stored": 2, "duplicates": 0}
    # Overlapping retry, with an event repeated inside the delivery itself.
    response = post(client, path, events(2, 3, 3, 1))
    assert response.status_code == 200
    assert response.get_json() == {"received": 4, "stored": 1, "duplicates": 3}
    assert counts(hub)["webhook_receipts"] == 3
    assert counts(hub)["job_runs"] == 1


def test_the_same_event_id_on_two_connections_is_two_receipts(hub, client, path):
    from hub.services.connections import CreateConnection, create_connection

    other = create_connection(
        CreateConnection(
            "hubspot", "Other portal", {"access_token": "pat-other", "client_secret": CLIENT_SECRET}
        ),
        hub.uow("tests"),
    )
    assert post(client, path, events(1)).status_code == 200
    assert post(client, f"/webhooks/{other.id}", events(1)).status_code == 200
    assert counts(hub)["webhook_receipts"] == 2 and counts(hub)["job_runs"] == 2


def test_an_empty_delivery_is_200_and_queues_nothing(hub, client, path):
    response = post(client, path, b"[]")
    assert response.status_code == 200 and response.get_json()["received"] == 0
    assert counts(hub)["job_runs"] == 0


@pytest.mark.parametrize(
    "body",
    [
        b'[{"eventId": 1, "subscriptionType": "contact.propertyChange"',  # truncated JSON
        b"not json at all",
        b'{"eventId": 1}',  # HubSpot sends an array
        b'[{"subscriptionType": "contact.propertyChange", "objectId": 1}]',  # no eventId
        b'[{"eventId": 1, "subscriptionType": "ticket.creation", "objectId": 1}]',  # not subscribed
    ],
)
def test_malformed_bodies_with_a_valid_signature_are_400_and_store_nothing(hub, client, path, body):
    before = counts(hub)
    response = post(client, path, body)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["type"] == "bad_request" and error["fields"] == {}
    assert counts(hub) == before


def test_an_event_id_too_long_to_store_is_400(hub, client, path):
    body = events(1).replace(b'"eventId":1', b'"eventId":"' + b"9" * 201 + b'"')
    assert post(client, path, body).status_code == 400
    assert counts(hub)["webhook_receipts"] == 0


def test_bad_and_stale_signatures_are_401_before_the_body_is_looked_at(hub, client, path):
    before = counts(hub)
    malformed = b"not json"
    assert post(client, path, malformed, secret="wrong").status_code == 401  # 401, not 400
    assert post(client, path, events(1), age_ms=6 * 60 * 1000).status_code == 401
    assert post(client, path, events(1), age_ms=-6 * 60 * 1000).status_code == 401  # from the future
    headers = signed_headers(BASE + path, events(1))
    headers["X-HubSpot-Signature-v3"] = headers["X-HubSpot-Signature-v3"][:-4] + "AAA="
    assert post(client, path, events(1), headers=headers).status_code == 401
    signed_elsewhere = signed_headers(BASE + "/webhooks/con_other", events(1))
    response = post(client, path, events(1), headers=signed_elsewhere)
    assert response.status_code == 401
    assert response.get_json() == {
        "error": {
            "type": "unauthorized",
            "message": "the webhook's signature is missing, does not match, or is too old",
            "fields": {},
        }
    }
    assert counts(hub) == before


def test_a_body_over_the_limit_is_413_and_one_at_the_limit_is_taken(hub, app, client, path):
    limit = app.config["WEBHOOKS_MAX_BYTES"]
    assert limit == 256 * 1024
    body = events(1)
    at_limit = body[:-1] + b" " * (limit - len(body)) + b"]"
    assert len(at_limit) == limit
    assert post(client, path, at_limit).status_code == 200
    over = at_limit[:-1] + b" ]"
    response = post(client, path, over)
    assert response.status_code == 413
    assert response.get_json()["error"]["type"] == "too_large"
    assert counts(hub)["webhook_receipts"] == 1


def test_unknown_and_disabled_connections_are_404_and_store_nothing(hub, client, path, connection, clock):
    before = counts(hub)
    for missing in ("/webhooks/con_nope", "/webhooks/" + "x" * 300):
        response = post(client, missing, events(1))
        assert response.status_code == 404
        assert response.get_json()["error"]["type"] == "not_found"
    assert post(client, path, events(1)).status_code == 200  # opens (and caches) the connector

    clock.set(clock.now() + timedelta(seconds=1))
    update_connection(UpdateConnection(connection.id, enabled=False), hub.uow("tests"))
    before = counts(hub)
    response = post(client, path, events(2))
    assert response.status_code == 404
    assert counts(hub) == before


def test_a_connection_disabled_while_its_connector_is_cached_takes_nothing(hub, client, path, connection):
    assert post(client, path, events(1)).status_code == 200  # opens (and caches) the connector
    update_connection(UpdateConnection(connection.id, enabled=False), hub.uow("tests"))  # same clock
    before = counts(hub)
    assert post(client, path, events(2)).status_code == 404
    assert post(client, path, b"[]").status_code == 404  # nothing to store, still refused
    assert counts(hub) == before


def test_no_api_key_is_needed_and_other_methods_are_405(client, path):
    assert post(client, path, events(1)).status_code == 200
    response = client.get(path)
    assert response.status_code == 405 and response.get_json()["error"]["type"] == "method_not_allowed"


def test_the_config_is_decrypted_once_and_again_only_when_the_connection_changes(
    hub, app, client, path, connection, clock
):
    cache = app.extensions[EXTENSION].cache
    for n in range(5):
        assert post(client, path, events(n)).status_code == 200
    assert cache.opened == 1

    # A new signing secret: the old connector must not be used any longer.
    clock.set(clock.now() + timedelta(seconds=1))
    update_connection(UpdateConnection(connection.id, config={"client_secret": "rotated"}), hub.uow("tests"))
    assert post(client, path, events(10)).status_code == 401
    assert post(client, path, events(11), secret="rotated").status_code == 200
    assert cache.opened == 2

    # Even when the clock did not move (updated_at unchanged), a re-encrypted config is noticed.
    update_connection(
        UpdateConnection(connection.id, config={"client_secret": CLIENT_SECRET}), hub.uow("tests")
    )
    assert post(client, path, events(12)).status_code == 200
    assert cache.opened == 3


def test_the_cache_expires(app, client, path):
    cache = app.extensions[EXTENSION].cache
    now = [0.0]
    cache.monotonic = lambda: now[0]
    assert post(client, path, events(1)).status_code == 200
    now[0] += cache.ttl_seconds - 1
    assert post(client, path, events(2)).status_code == 200
    assert cache.opened == 1
    now[0] += 2
    assert post(client, path, events(3)).status_code == 200
    assert cache.opened == 2


def test_the_number_of_queries_does_not_grow_with_the_events(hub, client, path):
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if not statement.startswith("BEGIN"):  # SQLite's transactions (PostgreSQL's run without)
            statements.append(statement)

    assert post(client, path, events(0)).status_code == 200  # warm the cache
    event.listen(hub.engine, "before_cursor_execute", seen)
    try:
        assert post(client, path, events(1)).status_code == 200
        one = len(statements)
        statements.clear()
        assert post(client, path, events(*range(100, 200))).get_json()["stored"] == 100
        hundred = len(statements)
    finally:
        event.remove(hub.engine, "before_cursor_execute", seen)
    assert hundred == one, statements
    # With the connector cached: the receipts (their INSERT confirms the connection) and the job's check.
    assert one == 2, statements


def test_a_queue_failure_is_503_and_a_vendor_retry_repairs_it(hub, app, client, path, connection):
    working = app.extensions[PROCESSING]

    class Down:
        def enqueue(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise ConnectionError("redis is restarting")

    app.extensions[PROCESSING] = ProcessingQueue(Down)
    response = post(client, path, events(1, 2))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"]["type"] == "unavailable"
    assert counts(hub)["webhook_receipts"] == 2 and counts(hub)["job_runs"] == 0

    app.extensions[PROCESSING] = working
    response = post(client, path, events(1, 2))  # the vendor retries: duplicates, but the job is queued
    assert response.get_json() == {"received": 2, "stored": 0, "duplicates": 2}
    with hub.session_factory() as session:
        assert session.get(JobRun, f"webhooks:{connection.id}") is not None


def test_the_vendor_url_honours_forwarded_headers_only_behind_a_proxy(hub, app, client, path):
    public = "https://abohub.example.com" + path
    body = events(1)
    headers = {
        **signed_headers(public, body),
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "abohub.example.com",
    }
    assert app.config["WEBHOOKS_BEHIND_PROXY"] is False
    assert post(client, path, body, headers=headers).status_code == 401  # a client can't pick the URL
    app.config["WEBHOOKS_BEHIND_PROXY"] = True
    assert post(client, path, body, headers=headers).status_code == 200
    assert counts(hub)["webhook_receipts"] == 1


def test_vendor_url_reconstruction(app):
    cases = [
        ({}, "http://localhost/webhooks/c?x=1"),
        ({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example"}, "https://a.example/webhooks/c?x=1"),
        (
            {"X-Forwarded-Proto": "http, https", "X-Forwarded-Host": "evil, a.example"},
            "https://a.example/webhooks/c?x=1",
        ),
        (
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example", "X-Forwarded-Port": "443"},
            "https://a.example/webhooks/c?x=1",
        ),
        (
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example:8443"},
            "https://a.example:8443/webhooks/c?x=1",
        ),
        (
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example:443"},
            "https://a.example/webhooks/c?x=1",
        ),
        (
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example", "X-Forwarded-Prefix": "/hub/"},
            "https://a.example/hub/webhooks/c?x=1",
        ),
    ]
    for headers, expected in cases:
        with app.test_request_context("/webhooks/c?x=1", method="POST", headers=headers):
            from flask import request

            assert vendor_url(request, behind_proxy=True) == expected, headers
            assert vendor_url(request, behind_proxy=False) == "http://localhost/webhooks/c?x=1"


def test_logs_name_the_connection_and_counts_but_never_secrets_headers_or_bodies(
    hub, client, path, connection, caplog
):
    caplog.set_level(logging.DEBUG)
    body = events(41, 42, value="Very Private Name")
    headers = signed_headers(BASE + path, body)
    assert post(client, path, body, headers=headers).status_code == 200
    assert post(client, path, body, headers=headers).status_code == 200
    assert post(client, path, body, secret="wrong").status_code == 401
    assert post(client, path, b"{broken", headers=signed_headers(BASE + path, b"{broken")).status_code == 400
    text = caplog.text
    assert connection.id in text and "stored=2" in text and "duplicates=2" in text and "status=401" in text
    for secret in (
        CLIENT_SECRET,
        headers["X-HubSpot-Signature-v3"],
        "Very Private Name",
        "{broken",
        "pat-na1",
    ):
        assert secret not in text
