"""Webhook fixtures: a hub with encryption keys, a HubSpot connection, the real app served by a
real werkzeug server in a thread, and the HubSpot simulator posting signed webhooks to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import WSGIRequestHandler, make_server

from connectors.hubspot.simulator import HubSpotSimulator, sign_v3
from hub.app import create_app
from hub.bootstrap import Hub
from hub.services.connections import CreateConnection, create_connection
from hub.services.crypto import generate_key
from hub.store.models import Connection
from tests.conftest import count, make_hub, wipe

ACCESS_TOKEN = "pat-na1-99999999-8888-7777-6666-555555555555"
CLIENT_SECRET = "cs-webhook-signing-secret-do-not-log"
TABLES = ("webhook_receipts", "events", "outbox", "job_runs")


@pytest.fixture
def hub(database: str) -> Iterator[Hub]:
    instance = make_hub(database, encryption_keys=(generate_key(),))
    wipe(instance)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def app(hub: Hub) -> Flask:
    return create_app(hub=hub)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def path(connection: Connection) -> str:
    return f"/webhooks/{connection.id}"


@pytest.fixture
def connection(hub: Hub) -> Connection:
    return create_connection(
        CreateConnection(
            "hubspot", "HubSpot", {"access_token": ACCESS_TOKEN, "client_secret": CLIENT_SECRET}
        ),
        hub.uow("tests"),
    )


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    """The app on a real HTTP server; yields its base URL."""
    srv = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=lambda: srv.serve_forever(poll_interval=0.02), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.port}"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture
def endpoint(server: str, connection: Connection) -> str:
    return f"{server}/webhooks/{connection.id}"


@pytest.fixture
def sim(endpoint: str) -> Iterator[HubSpotSimulator]:
    """Webhooks queued until flushed, one attempt each (a refusal is not retried)."""
    with HubSpotSimulator(
        client_secret=CLIENT_SECRET, webhook_urls=[endpoint], webhook_mode="manual", webhook_retry_delays=()
    ) as simulator:
        yield simulator


def counts(hub: Hub) -> dict[str, int]:
    return {table: count(hub, table) for table in TABLES}


def signed_headers(url: str, body: bytes, *, secret: str = CLIENT_SECRET, age_ms: int = 0) -> dict[str, str]:
    """Headers as HubSpot sends them (v3) for a POST of ``body`` to ``url``."""
    timestamp = str(int(time.time() * 1000) - age_ms)
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Request-Timestamp": timestamp,
        "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, timestamp),
    }
