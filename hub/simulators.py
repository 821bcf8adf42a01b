"""Vendor simulators beside a local Abohub: the demo's HubSpot, reachable and live.

``abohub demo load`` adds a HubSpot connection whose ``base_url`` is a loopback address with
credentials made for it; ``abohub serve --simulators`` then starts a HubSpot simulator for every
enabled HubSpot connection pointed at this machine, on that address, accepting those credentials and
sending its signed webhooks to this server's ``/webhooks/<connection id>``. A simulator keeps its
records in memory, so a fresh one is empty: a reconcile job queued at start finds the links whose
records are gone, unlinks them and creates the records again, so the simulator always shows the
hub's customers and subscriptions.

The simulators run in the server's parent process, before gunicorn forks its workers: that process
must hold no database connection at the fork (SQLite's locks do not survive one), so it queues the
reconcile instead of running it, and closes its connections.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select

from connectors.hubspot.simulator import HubSpotSimulator
from hub import demo_staging
from hub.bootstrap import Hub
from hub.services.connections import CreateConnection, create_connection, open_connector
from hub.store.models import Connection
from jobs.reconcile_jobs import RECONCILE
from jobs.runtime import make_queue

log = logging.getLogger(__name__)
DEMO_CONNECTION = "HubSpot (simulator)"
DEMO_PORT = 8101
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Running:
    connection_id: str
    simulator: HubSpotSimulator
    token: str
    staged: demo_staging.Staged | None = None  # work set out for a person on this start


def add_demo_connection(hub: Hub, port: int = DEMO_PORT) -> str:
    """The demo's HubSpot connection (once), pointed at a simulator on this machine; returns its id."""
    with hub.session_factory() as session:
        existing = session.scalar(select(Connection.id).where(Connection.name == DEMO_CONNECTION))
    if existing:
        return existing
    config = {
        "base_url": f"http://127.0.0.1:{port}",
        "access_token": f"pat-demo-{secrets.token_hex(16)}",
        "client_secret": secrets.token_urlsafe(24),
    }
    return create_connection(CreateConnection("hubspot", DEMO_CONNECTION, config), hub.uow("cli:demo")).id


def start_simulators(hub: Hub, server_url: str) -> list[Running]:
    """A simulator for each enabled HubSpot connection on a loopback address; then a reconcile each."""
    with hub.session_factory() as session:
        ids = list(
            session.scalars(
                select(Connection.id).where(Connection.connector == "hubspot", Connection.enabled.is_(True))
            )
        )
    running = []
    staged = False
    for connection_id in ids:
        config = open_connector(hub.uow("system:simulators"), connection_id).config
        address = urlsplit(config["base_url"])
        if address.hostname not in LOOPBACK or not address.port or not config.get("access_token"):
            continue
        simulator = HubSpotSimulator(
            host=address.hostname,
            port=address.port,
            private_app_tokens=[config["access_token"]],
            client_secret=config["client_secret"],
            webhook_urls=[f"{server_url.rstrip('/')}/webhooks/{connection_id}"],
        )
        try:
            simulator.start()
        except OSError as exc:
            log.warning("no HubSpot simulator for %s: %s is taken (%s)", connection_id, address.netloc, exc)
            continue
        open_connector(hub.uow("system:simulators"), connection_id).ensure_properties()
        running.append(Running(connection_id, simulator, config["access_token"]))
        if demo_staging.needs_staging(hub, connection_id):
            done = demo_staging.stage(hub, connection_id, simulator)
            log.info(
                "staged %d conflict(s) and %d dead letter(s) on %s",
                done.conflicts,
                done.dead_letters,
                connection_id,
            )
            if done.conflicts or done.dead_letters:
                running[-1].staged = done
                staged = True
    if running and not staged:
        make_queue(hub).enqueue(RECONCILE, {}, f"simulators:fill:{int(time.time())}")
    hub.engine.dispose()
    return running
