"""Sync tests that take HubSpot's webhooks: the hub served over HTTP, the simulator aimed at it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from connectors.hubspot.simulator import HubSpotSimulator
from hub.app import create_app
from hub.bootstrap import Hub


@pytest.fixture
def served(hub: Hub) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, create_app(hub=hub), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def webhooks_to_hub(sim: HubSpotSimulator, served: str, connection_id: str) -> None:
    """The simulator signs and queues a webhook per change; ``sim.flush_webhooks()`` delivers them."""
    sim.webhooks.mode = "manual"
    sim.webhooks.targets = [f"{served}/webhooks/{connection_id}"]
