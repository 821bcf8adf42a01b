"""Helpers for the sync fault tests: a HubSpot connection on the simulator, quick HTTP patience,
driving the outbound path to the end, checking the remote copy, worker processes, a private Redis.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

import connectors.hubspot.connector as hubspot_module
import hub.services.connections as connections_module
from connectors.base import ConnectorContext
from connectors.http import HttpPolicy
from connectors.hubspot.simulator import HubSpotSimulator
from hub.bootstrap import Hub
from hub.services import customers
from hub.services.clock import FixedClock
from hub.services.connections import CreateConnection, create_connection, open_connector
from hub.services.sync import load_mapping, local_values
from hub.store.models import DeadLetter, Link, OutboxMessage, SyncState
from jobs.periodic import relay_outbox, repair_sync_states
from mappings.engine import to_remote

ROOT = Path(__file__).resolve().parents[2]
CLIENT_TIMEOUT = 1.0  # seconds the connector waits for HubSpot's answer where tests hold requests
PATIENT = 10.0  # … elsewhere (production: 30), so that a busy machine causes no timeout of its own
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


# -- the connector's patience, shortened for tests ----------------------------------------------


def quick_http(monkeypatch: pytest.MonkeyPatch, timeout: float = PATIENT) -> None:
    """Connectors opened by the sync wait ``timeout`` seconds for an answer and back off briefly.

    The timeout is the ``connector_timeout_seconds`` setting (whole seconds, 30 by default); the
    backoff is not a setting. Both are narrowed here for connectors opened in this process, whatever
    hub opens them; ``Retry-After`` is still honoured in full.
    """

    def context(**options: Any) -> ConnectorContext:
        return ConnectorContext(**{**options, "timeout_seconds": timeout})

    monkeypatch.setattr(connections_module, "ConnectorContext", context)
    monkeypatch.setattr(
        hubspot_module, "HttpPolicy", functools.partial(HttpPolicy, backoff_base=0.05, backoff_max=0.3)
    )


# -- HubSpot ------------------------------------------------------------------------------------


def simulator(**options: Any) -> HubSpotSimulator:
    """A simulator whose 429s say ``Retry-After: 1`` (its window is one second) and that sends no webhooks."""
    options = {"webhook_mode": "off", "retry_after_header": True, "rate_limit_interval": 1.0, **options}
    return HubSpotSimulator(**options)


def hubspot_connection(hub: Hub, sim: HubSpotSimulator) -> str:
    connection = create_connection(
        CreateConnection(
            "hubspot",
            "HubSpot",
            {"base_url": sim.base_url, "access_token": sim.token, "client_secret": sim.client_secret},
        ),
        hub.uow("tests"),
    )
    open_connector(hub.uow(), connection.id).ensure_properties()
    sim.reset_stats()
    return connection.id


# -- changes in the hub -------------------------------------------------------------------------


def create_customers(hub: Hub, count: int, tag: str = "c") -> list[str]:
    return [
        customers.create_customer(
            customers.CreateCustomer(name=f"Customer {tag}{n}", email=f"{tag}{n}@example.dk"), hub.uow()
        ).id
        for n in range(count)
    ]


def edit_customers(hub: Hub, ids: Iterable[str], round_: int) -> int:
    """One change per customer (its VAT number), as a person editing them in the hub would."""
    changed = 0
    for index, customer_id in enumerate(ids):
        customers.update_customer(
            customers.UpdateCustomer(customer_id, {"vat_number": f"DK{round_:02d}{index:06d}"}), hub.uow()
        )
        changed += 1
    return changed


# -- driving the outbound path ------------------------------------------------------------------


def unrelayed(hub: Hub) -> int:
    with hub.session_factory() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.relayed_at.is_(None))
            )
            or 0
        )


def dirty(hub: Hub) -> int:
    with hub.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(SyncState)) or 0)


def work_left(hub: Hub) -> int:
    """Outbox rows not relayed yet, plus records still dirty."""
    return unrelayed(hub) + dirty(hub)


def settle(hub: Hub, run_jobs: Callable[[], object], *, step: timedelta = timedelta(minutes=5)) -> int:
    """Relay and run jobs until nothing is left; between passes time moves on by ``step``.

    The hub's clock is a :class:`FixedClock`: moving it lets a record's backoff on its sync
    state (30 s, 60 s, …) and the repair delay pass without waiting for them. Returns the passes.
    """
    assert isinstance(hub.clock, FixedClock)
    for passes in range(1, 30):
        relay_outbox(hub)
        run_jobs()
        if work_left(hub) == 0:
            return passes
        hub.clock.set(hub.clock.now() + step)
        repair_sync_states(hub)
        run_jobs()
    raise AssertionError(f"work still left after 30 passes: {work_left(hub)}")


# -- what the remote side must hold -------------------------------------------------------------


def expected_contacts(hub: Hub, connection_id: str) -> dict[str, dict[str, Any]]:
    """local id → the contact properties the hub's current values map to."""
    with hub.session_factory() as session:
        mapping = load_mapping(session, connection_id, "customer")
        assert mapping is not None
        ids = list(session.scalars(select(Link.local_id).where(Link.connection_id == connection_id)))
        values = local_values(session, "customer", ids)
    return {local_id: to_remote(mapping, local) for local_id, local in values.items()}


def same_value(remote: str | None, wanted: Any) -> bool:
    """HubSpot keeps every property as a string: "149" and "149.00" are the same number."""
    if wanted is None:
        return remote in (None, "")
    if isinstance(wanted, (int, float, Decimal)):
        return remote is not None and Decimal(remote) == Decimal(wanted)
    return str(remote) == str(wanted)


def contacts_by_abohub_id(sim: HubSpotSimulator) -> dict[str, dict[str, Any]]:
    """abohub_id → the live contact; fails if one customer has two contacts."""
    live = sim.records("contacts")
    counts = Counter(record["properties"].get("abohub_id") for record in live)
    doubled = {key: n for key, n in counts.items() if n > 1}
    assert not doubled, f"customers with more than one contact: {doubled}"
    return {record["properties"]["abohub_id"]: record for record in live}


def assert_remote_holds_the_hub(hub: Hub, sim: HubSpotSimulator, connection_id: str, ids: list[str]) -> None:
    """Every customer has exactly one contact, holding exactly the hub's current values."""
    contacts = contacts_by_abohub_id(sim)
    assert sorted(contacts) == sorted(ids)
    expected = expected_contacts(hub, connection_id)
    assert sorted(expected) == sorted(ids), "every customer is linked"
    wrong = {
        local_id: {
            name: (contacts[local_id]["properties"].get(name), value)
            for name, value in wanted.items()
            if not same_value(contacts[local_id]["properties"].get(name), value)
        }
        for local_id, wanted in expected.items()
    }
    wrong = {local_id: fields for local_id, fields in wrong.items() if fields}
    assert not wrong, f"{len(wrong)} contact(s) differ from the hub, e.g. {list(wrong.items())[:3]}"


def remote_ids(hub: Hub, connection_id: str) -> dict[str, str]:
    with hub.session_factory() as session:
        rows = session.execute(
            select(Link.local_id, Link.remote_id).where(Link.connection_id == connection_id)
        )
        return {local_id: remote_id for local_id, remote_id in rows}


def late_writes_landed(sim: HubSpotSimulator, fault: Any) -> bool:
    """Has HubSpot answered (and so applied) every request a ``timeout`` fault held back?"""
    return sum(1 for entry in sim.stats.log if entry.fault == "timeout") >= fault.fired


def writes_per_record(hub: Hub, sim: HubSpotSimulator, connection_id: str) -> dict[str, int]:
    """local id → the API writes HubSpot applied to its contact."""
    return {local: sim.writes("contacts", remote) for local, remote in remote_ids(hub, connection_id).items()}


def applied_versions(sim: HubSpotSimulator) -> dict[str, Counter[str]]:
    """abohub_id → how often HubSpot applied each distinct set of properties to that contact.

    Read from the simulator's request log: every 2xx batch upsert or update, per input. A
    version applied twice is a write whose answer the client never saw (it timed out), sent again.
    """
    versions: dict[str, Counter[str]] = {}
    for entry in sim.stats.log:
        if not entry.template.endswith(("/batch/upsert", "/batch/update")) or not 200 <= entry.status < 300:
            continue
        assert entry.status != 207, "partial batch answers are not expected here"
        for item in entry.body["inputs"]:
            properties = item["properties"]
            version = json.dumps(properties, sort_keys=True)
            versions.setdefault(properties["abohub_id"], Counter())[version] += 1
    return versions


def assert_each_change_written_once_in_effect(
    hub: Hub, sim: HubSpotSimulator, connection_id: str, most_versions: int
) -> Counter[int]:
    """No record got more distinct writes than the versions it went through, and no version was
    applied more than twice (once, plus once more when its answer was lost). Returns how many
    versions were applied twice, by record count."""
    writes = writes_per_record(hub, sim, connection_id)
    versions = applied_versions(sim)
    assert {local: sum(v.values()) for local, v in versions.items()} == writes, "the log shows every write"
    too_many = {local: len(v) for local, v in versions.items() if len(v) > most_versions}
    assert not too_many, f"records written with more versions than they went through: {too_many}"
    repeated = {local: max(v.values()) for local, v in versions.items() if max(v.values()) > 2}
    assert not repeated, f"a version applied more than twice: {repeated}"
    return Counter(sum(1 for n in v.values() if n == 2) for v in versions.values())


def open_dead_letters(hub: Hub) -> list[DeadLetter]:
    with hub.session_factory() as session:
        return list(session.scalars(select(DeadLetter).where(DeadLetter.resolved_at.is_(None))))


# -- processes ----------------------------------------------------------------------------------


def environment(hub: Hub, **settings: object) -> dict[str, str]:
    """The environment of a worker process with the hub's database, keys and Redis (if any)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABOHUB_")}
    env.update(
        ABOHUB_DATABASE_URL=hub.settings.database_url,
        ABOHUB_ENCRYPTION_KEYS=",".join(hub.settings.encryption_keys),
        ABOHUB_TESTING="true",
        ABOHUB_LOG_LEVEL="WARNING",
    )
    for name in (
        "job_lease_seconds",
        "job_retry_base_seconds",
        "job_max_attempts",
        "sync_repair_delay_seconds",
    ):
        env[f"ABOHUB_{name.upper()}"] = str(getattr(hub.settings, name))
    if hub.settings.redis_url:
        env.update(ABOHUB_REDIS_URL=hub.settings.redis_url, ABOHUB_REDIS_PREFIX=hub.settings.redis_prefix)
    env.update({f"ABOHUB_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def spawn(hub: Hub, code: str, log: Path, **settings: object) -> subprocess.Popen[bytes]:
    """A Python process (in a session of its own) running ``code``, its output in ``log``."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=environment(hub, **settings),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


RQ_WORKER = "from hub.cli import main\nmain(['worker'])\n"
EMBEDDED_WORKER = (
    "from config import load_settings\n"
    "from hub.bootstrap import build\n"
    "from jobs.runtime import embedded_queue\n"
    "from jobs.worker import EmbeddedWorker\n"
    "hub = build(load_settings())\n"
    "EmbeddedWorker(hub, embedded_queue(hub), idle_seconds=0.05).run()\n"
)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process (the worker itself: an rq work-horse dies with it by PR_SET_PDEATHSIG)."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()


def kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def until(condition: Callable[[], bool], seconds: float, what: str, log: Path | None = None) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            shown = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise AssertionError(f"{what}: not within {seconds} s\n{shown}")
        time.sleep(0.02)
    return time.monotonic() - started


# -- a private Redis ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A ``redis-server`` of our own, without persistence: killing it loses everything queued."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        options = {"port": str(self.port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
        options |= {"dir": str(self.directory), "logfile": str(self.directory / "redis.log")}
        self.process = subprocess.Popen(
            [REDIS_SERVER, *(part for name, value in options.items() for part in (f"--{name}", value))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            until(lambda: _answers(client), 10, "the private redis-server starts")
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None:
            kill(self.process)
            self.process = None


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@contextmanager
def private_redis(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()
