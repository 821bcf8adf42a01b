"""Idempotency-Key on POST, with Stripe's semantics."""

from __future__ import annotations

from tests.conftest import count


def test_same_key_same_body_replays_the_first_response(api, hub):
    body = {"name": "Jens Olsen", "email": "jens@example.dk"}
    first_status, first = api.post("/customers", body, headers={"Idempotency-Key": "order-42"})
    second_status, second = api.post("/customers", body, headers={"Idempotency-Key": "order-42"})
    assert first_status == second_status == 201
    assert first == second
    assert count(hub, "customers") == 1


def test_replay_is_marked(app, api_key):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": "k1"}
    body = {"name": "Jens Olsen", "email": "jens@example.dk"}
    assert "Idempotent-Replayed" not in client.post("/api/v1/customers", json=body, headers=headers).headers
    assert (
        client.post("/api/v1/customers", json=body, headers=headers).headers["Idempotent-Replayed"] == "true"
    )


def test_same_key_different_body_is_an_error_and_changes_nothing(api, hub):
    api.post(
        "/customers", {"name": "Jens Olsen", "email": "jens@example.dk"}, headers={"Idempotency-Key": "k"}
    )
    status, body = api.post(
        "/customers", {"name": "Someone Else", "email": "else@example.dk"}, headers={"Idempotency-Key": "k"}
    )
    assert status == 400
    assert body["error"]["type"] == "idempotency_error"
    assert count(hub, "customers") == 1


def test_errors_are_replayed_too(api, hub):
    bad = {"name": "", "email": "x"}
    first = api.post("/customers", bad, headers={"Idempotency-Key": "bad-1"})
    second = api.post("/customers", bad, headers={"Idempotency-Key": "bad-1"})
    assert first == second
    assert first[0] == 422


def test_without_a_key_every_post_runs(api, hub):
    body = {"name": "Jens Olsen", "email": "jens@example.dk"}
    api.post("/customers", body)
    api.post("/customers", body)
    assert count(hub, "customers") == 2


def test_keys_are_per_api_key(app, hub, api):
    from hub.services.apikeys import create_api_key

    other = create_api_key("other", hub.uow()).secret
    body = {"name": "Jens Olsen", "email": "jens@example.dk"}
    api.post("/customers", body, headers={"Idempotency-Key": "shared"})
    response = app.test_client().post(
        "/api/v1/customers",
        json=body,
        headers={"Authorization": f"Bearer {other}", "Idempotency-Key": "shared"},
    )
    assert response.status_code == 201
    assert count(hub, "customers") == 2


def test_a_malformed_key_is_refused(api, hub):
    status, body = api.post(
        "/customers", {"name": "Jens", "email": "jens@example.dk"}, headers={"Idempotency-Key": "x" * 256}
    )
    assert status == 400 and "Idempotency-Key" in body["error"]["fields"]
    assert count(hub, "customers") == 0
