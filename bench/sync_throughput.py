"""Sync-throughput benchmark: 10,000 changed customers pushed to the HubSpot simulator under its rate limit.

Run it with ``python -m bench.sync_throughput`` (``--help`` for options). It

1. measures the **baseline**: the HubSpot connector alone (no database, no jobs) writing full
   batch updates of 100 contacts to a simulator with the same rate limit, as fast as its token
   bucket lets it, for 3.5 windows: what the limit and the client's pacing allow by themselves;
2. for each job backend asked for (``--backend embedded``, ``rq`` or ``both``): creates a fresh
   database ``abohub_bench_sync`` on the local PostgreSQL server, loads N customers with ``COPY``
   and links each to a contact in a HubSpot simulator with its rate limit **on** (what a first
   sync leaves behind; setup, not timed), with a connection configured for the same limit
   (``requests_per_ten_seconds``); then changes one field of every customer through the service
   layer (``update_customer``: the change, its event and its outbox row in one transaction);
3. starts the job runtime: the embedded :class:`~jobs.queue.DatabaseQueue` worker threads in this
   process, or ``abohub worker`` rq processes on Redis, with the real scheduler (relay and repair
   only: polling would add inbound traffic to what is measured), and times from its first relay
   until the simulator has the last record's new value: outbox → relay → sync states → push
   jobs → batch writes, the real path;
4. compares every simulator record with the hub (nothing lost, nothing doubled, nothing left
   dirty or dead-lettered), counts the requests the simulator answered and how many were 429.

The simulator runs in a process of its own (:mod:`bench._simprocess`), as HubSpot is never inside
the hub's: in the measured process it would take a share of that process's interpreter lock and
bill it to the hub. Its CPU is reported beside the hub's.

The limit: HubSpot's own, 190 requests per rolling 10 s (``--limit``, ``--window``), the one
the connector is configured for; a shorter scaled window would be stricter than anything the
connector can be told (``requests_per_ten_seconds``), so its 429s would measure the scaling.
The **ceiling** is what the limit allows with full batches: (requests per second) × 100 records
per batch, halved with ``--field name``, where a possible clash makes the push read the
records first (one batch read per batch write). The target: at least 0.9 of the ceiling,
nothing lost, under 1 % of requests answered 429. The machine is shared: compare figures from
one run.

Exit status: 0 when the checks passed and the target was met, 1 when a check failed (records
lost, doubled or left behind), 3 when the checks passed but the target was missed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import redis
from rq import Queue, Worker
from sqlalchemy import func, insert, select

from bench._common import DEFAULT_ADMIN_URL, fresh_database
from bench._simprocess import SimulatorProcess
from config import load_settings
from connectors.base import ConnectorContext, WriteItem
from connectors.hubspot.connector import HubSpotConnector
from hub.bootstrap import Hub, build
from hub.domain.ids import new_id
from hub.services.connections import CreateConnection, create_connection, open_connector
from hub.services.crypto import generate_key
from hub.services.customers import UpdateCustomer, update_customer
from hub.services.sync import load_mapping, local_values
from hub.store.migrate import upgrade
from hub.store.models import Conflict, Customer, DeadLetter, Link, SyncState
from jobs.embedded import EmbeddedRuntime
from jobs.runtime import embedded_queue, make_scheduler
from jobs.schedule import SCHEDULE
from jobs.worker import EmbeddedWorker
from mappings import plan_record

DB_NAME = "abohub_bench_sync"
SECRET = "bench-sync-throughput-not-a-secret"  # a throwaway database
REDIS_URL = os.environ.get("ABOHUB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TARGET_RATIO = 0.9
TARGET_429 = 0.01
BATCH = 100  # HubSpot's batch size
ACTOR = "system:bench"
# Relay and repair, as the real scheduler runs them; polling would add inbound traffic.
BENCH_SCHEDULE = tuple(p for p in SCHEDULE if p.name in ("relay_outbox", "repair_sync_states"))
# The field changed → (the remote property that shows it, requests per full batch of records).
FIELDS = {
    "vat_number": ("abohub_vat_number", 1),  # hub wins: written without a look
    "name": ("lastname", 2),  # held for a person on a clash: read (batch read) before the write
}


@dataclass
class Outcome:
    backend: str
    customers: int
    seconds: float = 0.0
    first_seconds: float = 0.0  # until the first record was confirmed: relay, planning, first batch
    confirmed: int = 0
    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    profile: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.confirmed / self.seconds if self.seconds else 0.0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def rejected(self) -> int:
        return sum(n for (_, _, status), n in self.requests.items() if status == 429)

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.total_requests if self.total_requests else 0.0


# --- setup ------------------------------------------------------------------------------


def make_hub(url: str, key: str, redis_prefix: str | None) -> Hub:
    overrides: dict[str, Any] = {"database_url": url, "secret_key": SECRET, "encryption_keys": (key,)}
    if redis_prefix:
        overrides |= {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    return build(load_settings({}, **overrides))


def load_customers(url: str, count: int) -> list[str]:
    """N customers, written with COPY (setup: what is measured is the sync of their changes)."""
    at = datetime.now(UTC) - timedelta(days=1)
    ids = [new_id("cus") for _ in range(count)]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY customers (id, name, email, country, vat_number, currency, locale, address_line1, "
            "address_line2, postal_code, city, metadata, mrr, revenue_state, first_active_at, created_at, "
            "updated_at) FROM STDIN"
        ) as copy:
            for n, cid in enumerate(ids):
                copy.write_row(
                    (
                        cid,
                        f"Bench Kunde{n}",
                        f"kunde{n}@bench.example.dk",
                        "DK",
                        None,
                        "DKK",
                        "da_DK",
                        f"Benchvej {n % 200 + 1}",
                        None,
                        f"{1000 + n % 8000}",
                        "København",
                        "{}",
                        0,
                        "none",
                        None,
                        at,
                        at,
                    )
                )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE customers")
    return ids


def pre_link(hub: Hub, sim: SimulatorProcess, connection_id: str, ids: list[str]) -> None:
    """Each customer as a contact in the simulator and linked, as a first sync leaves them (not timed).

    The contact holds what the first push would have sent and the link its fingerprints, computed
    by the mapping engine, so the timed run pushes exactly the one changed field of each customer.
    """
    now = hub.clock.now()
    with hub.session_factory() as session:
        mapping = load_mapping(session, connection_id, "customer")
        values = local_values(session, "customer", ids)
    assert mapping is not None
    plans = [plan_record(mapping, values[cid], None, None) for cid in ids]
    remote_ids = sim.create_many(
        mapping.remote_object, [{**plan.push, "abohub_id": cid} for cid, plan in zip(ids, plans, strict=True)]
    )
    rows = [
        {
            "connection_id": connection_id,
            "object_type": "customer",
            "local_id": cid,
            "remote_object": mapping.remote_object,
            "remote_id": remote_id,
            "fingerprints": plan.fingerprints,
            "last_pushed_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for cid, plan, remote_id in zip(ids, plans, remote_ids, strict=True)
    ]
    with hub.engine.begin() as connection:
        connection.execute(insert(Link), rows)
    # Statistics, as autovacuum keeps them for a table of this size in production (its first pass
    # comes up to a minute after a bulk load: without them the planner takes 10,000 links for one).
    with hub.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE links")


def new_value(what: str, n: int) -> str:
    return f"DK{20_000_000 + n}" if what == "vat_number" else f"Bench Kunde{n} Ny"


def change_all(hub: Hub, ids: list[str], what: str) -> float:
    """One change per customer through the service layer (change, event, outbox row); seconds taken.

    A few threads: each change is its own transaction, and this is setup, not what is measured.
    """
    began = time.perf_counter()

    def change(n: int) -> None:
        update_customer(UpdateCustomer(ids[n], {what: new_value(what, n)}), hub.uow(ACTOR))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(change, range(len(ids))))
    return time.perf_counter() - began


# --- the job runtimes -------------------------------------------------------------------


# Each runtime gets its workers ready, then yields the function that starts the work (the scheduler,
# and the embedded worker threads); the clock starts just before it, so a worker process's start-up
# (its imports, registering with Redis) is not counted: in production the workers are already running.


@contextmanager
def embedded_runtime(hub: Hub, workers: int, profile: Profile) -> Iterator[Callable[[], None]]:
    queue = embedded_queue(hub)
    runtime = EmbeddedRuntime(
        workers=[EmbeddedWorker(hub, queue, idle_seconds=0.2) for _ in range(workers)],
        scheduler=make_scheduler(hub, BENCH_SCHEDULE),
    )

    def start() -> None:
        for worker in runtime.workers:
            worker.start()
        assert runtime.scheduler is not None
        runtime.scheduler.start()

    try:
        yield start
    finally:
        runtime.stop(timeout=60)


@contextmanager
def rq_runtime(hub: Hub, workers: int, profile: Profile) -> Iterator[Callable[[], None]]:
    settings = hub.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ABOHUB_")},
        "ABOHUB_DATABASE_URL": settings.database_url,
        "ABOHUB_SECRET_KEY": settings.secret_key,
        "ABOHUB_ENCRYPTION_KEYS": ",".join(settings.encryption_keys),
        "ABOHUB_REDIS_URL": REDIS_URL,
        "ABOHUB_REDIS_PREFIX": settings.redis_prefix,
        "ABOHUB_LOG_LEVEL": "INFO",
        "ABOHUB_LOG_JSON": "true",
    }
    abohub = os.path.join(os.path.dirname(sys.executable), "abohub")
    log_path = os.path.join(tempfile.gettempdir(), f"{settings.redis_prefix}-workers.log")
    with open(log_path, "wb") as log_file:
        processes = [
            subprocess.Popen(
                [abohub, "worker", "-q", "default"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            for _ in range(workers)
        ]
    print(f"  rq: {workers} `abohub worker` processes, their output in {log_path}")
    scheduler = make_scheduler(hub, BENCH_SCHEDULE)
    client = redis.Redis.from_url(REDIS_URL)

    def start() -> None:
        profile.cpu.start_workers([process.pid for process in processes])
        scheduler.start()

    try:
        listening = Queue(f"{settings.redis_prefix}-default", connection=client)
        ready_by = time.monotonic() + 60
        while Worker.count(connection=client, queue=listening) < workers and time.monotonic() < ready_by:
            time.sleep(0.05)
        yield start
    finally:
        scheduler.stop(30)
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        profile.worker_log(log_path)
        for key in client.scan_iter(f"{settings.redis_prefix}*"):
            client.delete(key)


def process_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds (user + system) a live local process has used so far, with its ended children's if
    asked (an rq worker runs each job in a child it forks); 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(one) for one in fields[11 : 15 if children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds spent during the timed run, per party: wall-clock figures on a shared machine say
    little, CPU time says what bounds the throughput. PostgreSQL's share is read from /proc for the
    server processes serving the bench database (a local server)."""

    def __init__(self, url: str, simulator_pid: int) -> None:
        self.url = url
        self.own = own_cpu()
        self.simulator_pid = simulator_pid
        self.simulator = process_cpu(simulator_pid)
        self.servers = self.database()
        self.workers: dict[int, float] = {}

    def database(self) -> dict[int, float]:
        """CPU so far of each server process connected to the bench database (pid → seconds)."""
        with psycopg.connect(self.url) as conn:
            pids = conn.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        return {pid: process_cpu(pid) for (pid,) in pids}

    def start_workers(self, pids: list[int]) -> None:
        """The rq worker processes, counted from when they are ready (not their imports)."""
        self.workers = {pid: process_cpu(pid, children=True) for pid in pids}

    def spent(self) -> dict[str, float]:
        """Seconds since the meter was made; call it while the workers and connections still live.

        With rq workers PostgreSQL is left out: each job's connections end with the child running it,
        and the CPU of server processes that ended cannot be told apart from other databases' work.
        """
        spent = {"this process": own_cpu() - self.own}
        spent["simulator"] = process_cpu(self.simulator_pid) - self.simulator
        if self.workers:
            spent["rq workers"] = sum(
                process_cpu(pid, children=True) - cpu for pid, cpu in self.workers.items()
            )
        else:
            servers = self.database()
            spent["PostgreSQL"] = sum(cpu - self.servers.get(pid, 0.0) for pid, cpu in servers.items())
        return spent


class Profile(logging.Handler):
    """Adds up what the time went to: from this process's log records, or from rq workers' log lines."""

    def __init__(self, cpu: CpuMeter) -> None:
        super().__init__(logging.DEBUG)
        self.totals: Counter[str] = Counter()
        self.cpu = cpu

    def emit(self, record: logging.LogRecord) -> None:
        duration = getattr(record, "duration_ms", None)
        if duration is not None:
            self.totals["HTTP requests (s)"] += duration / 1000
            self.totals["client rate-limit waits (s)"] += getattr(record, "rate_limit_wait_ms", 0) / 1000
            return
        self.job_line(record.getMessage())

    def job_line(self, message: str) -> None:
        """``job … (function) attempt N done in X s``: count the push and relay jobs' time."""
        if " done in " not in message:
            return
        seconds = float(message.rsplit(" done in ", 1)[1].split()[0])
        if "(push_changes)" in message:
            self.totals["push jobs (s)"] += seconds
            self.totals["push job runs"] += 1
        elif "(relay_outbox)" in message:
            self.totals["relay jobs (s)"] += seconds

    def worker_log(self, path: str) -> None:
        """The rq workers' JSON log lines (``ABOHUB_LOG_JSON``)."""
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if line.startswith("{"):
                    self.job_line(str(json.loads(line).get("event", "")))


@contextmanager
def profiling(cpu: CpuMeter) -> Iterator[Profile]:
    handler = Profile(cpu)
    loggers = [logging.getLogger("connectors.http"), logging.getLogger("jobs.worker")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)  # the periodic jobs (the relay) log their "done" lines at DEBUG
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


# --- one run ----------------------------------------------------------------------------


def run(args: argparse.Namespace, backend: str) -> Outcome:
    outcome = Outcome(backend, args.customers)
    remote_property, _ = FIELDS[args.field]
    prefix = f"abohub-bench-sync-{uuid.uuid4().hex[:8]}" if backend == "rq" else None
    with (
        fresh_database(args.admin_url, DB_NAME, keep=args.keep) as url,
        SimulatorProcess(webhook_mode="off", rate_limit=args.limit, rate_limit_interval=args.window) as sim,
    ):
        hub = make_hub(url, generate_key(), prefix)
        try:
            upgrade(hub.engine)
            setup_began = time.perf_counter()
            connection = create_connection(
                CreateConnection(
                    "hubspot",
                    "HubSpot (simulator)",
                    {
                        "base_url": sim.base_url,
                        "access_token": sim.token,
                        "client_secret": sim.client_secret,
                        "requests_per_ten_seconds": round(args.limit * 10 / args.window),
                    },
                ),
                hub.uow(ACTOR),
            )
            open_connector(hub.uow(ACTOR), connection.id).ensure_properties()
            ids = load_customers(url, args.customers)
            pre_link(hub, sim, connection.id, ids)
            linked = time.perf_counter()
            changing = change_all(hub, ids, args.field)
            print(
                f"  setup: {len(ids):,} customers loaded and linked in {linked - setup_began:.1f} s, "
                f"each changed ({args.field}) through the service layer in {changing:.1f} s "
                f"({len(ids) / changing:,.0f}/s)"
            )
            time.sleep(args.window)  # a quiet window: the timed run starts as after any idle spell
            sim.reset_stats()
            sim.watch(remote_property)
            runtime = embedded_runtime if backend == "embedded" else rq_runtime
            with profiling(CpuMeter(url, sim.pid)) as profile:
                with runtime(hub, args.workers, profile) as start:
                    began = time.monotonic()
                    start()
                    deadline = began + args.timeout
                    while (landed := sim.landings())[0] < len(ids) and time.monotonic() < deadline:
                        time.sleep(0.05)
                    outcome.confirmed, first, last = landed
                    outcome.seconds = (last if last is not None else time.monotonic()) - began
                    outcome.first_seconds = first - began if first is not None else 0.0
                    wait_settled(hub, deadline)
                    outcome.cpu = profile.cpu.spent()
                outcome.profile = dict(profile.totals)
            outcome.requests = sim.requests()
            outcome.problems = verify(hub, sim, ids, args.field, remote_property)
        finally:
            hub.close()
    return outcome


def wait_settled(hub: Hub, deadline: float) -> None:
    """Until no record is left dirty (the last links and sync states are written after the push)."""
    while time.monotonic() < deadline:
        with hub.session_factory() as session:
            if not session.scalar(select(func.count()).select_from(SyncState)):
                return
        time.sleep(0.05)


def verify(hub: Hub, sim: SimulatorProcess, ids: list[str], what: str, remote_property: str) -> list[str]:
    """Each simulator record against the hub: every change arrived, once, on the right record."""
    problems: list[str] = []
    contacts = {str(r["id"]): r["properties"] for r in sim.records("contacts")}
    if len(contacts) != len(ids):
        problems.append(f"the simulator holds {len(contacts):,} contacts, expected {len(ids):,}")
    with hub.session_factory() as session:
        links = {local: remote for local, remote in session.execute(select(Link.local_id, Link.remote_id))}
        column = getattr(Customer, what)
        hub_values = {cid: value for cid, value in session.execute(select(Customer.id, column))}
        left = {
            "dirty sync states": session.scalar(select(func.count()).select_from(SyncState)),
            "dead letters": session.scalar(select(func.count()).select_from(DeadLetter)),
            "conflicts": session.scalar(select(func.count()).select_from(Conflict)),
        }
    lost = 0
    for n, cid in enumerate(ids):
        expected = new_value(what, n)
        shown = expected.split(" ", 1)[1] if what == "name" else expected  # lastname: all but the first word
        remote = contacts.get(links.get(cid, ""))
        if hub_values.get(cid) != expected or remote is None or remote.get(remote_property) != shown:
            lost += 1
    if lost:
        problems.append(f"{lost:,} records lost: the simulator does not show the hub's new value")
    problems += [f"{count:,} {name} left" for name, count in left.items() if count]
    return problems


# --- the baseline: the connector alone ---------------------------------------------------


@dataclass
class Baseline:
    seconds: float
    records: int
    requests: int
    rejected: int
    cpu: float  # seconds, the connector and the simulator (its own process) together

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def connector_baseline(args: argparse.Namespace, seconds: float) -> Baseline:
    """Full batch updates of 100 contacts through the connector alone, as fast as its bucket lets it.

    No database, no jobs: what the rate limit and the client's pacing allow by themselves, over
    ``seconds`` (several windows), from a quiet window, against a simulator of its own.
    """
    with SimulatorProcess(webhook_mode="off", rate_limit=args.limit, rate_limit_interval=args.window) as sim:
        config = {
            "base_url": sim.base_url,
            "access_token": sim.token,
            "client_secret": sim.client_secret,
            "requests_per_ten_seconds": round(args.limit * 10 / args.window),
        }
        hubspot = HubSpotConnector(config, ConnectorContext(timeout_seconds=30))
        hubspot.ensure_properties()
        ids = sim.create_many("contacts", [{"email": f"base{n}@bench.example.dk"} for n in range(BATCH)])
        time.sleep(args.window)
        sim.reset_stats()
        records, round_number = 0, 0
        began, cpu, sim_cpu = time.perf_counter(), own_cpu(), process_cpu(sim.pid)
        while time.perf_counter() - began < seconds:
            round_number += 1
            items = [
                WriteItem(f"cus_base_{n}", {"firstname": f"Runde{round_number}"}, f"k{n}", remote_id=rid)
                for n, rid in enumerate(ids)
            ]
            records += sum(result.ok for result in hubspot.write_batch("contacts", items))
        took, cpu = time.perf_counter() - began, own_cpu() - cpu + process_cpu(sim.pid) - sim_cpu
        requests = sim.requests()
        rejected = sum(n for (_, _, status), n in requests.items() if status == 429)
        return Baseline(took, records, sum(requests.values()), rejected, cpu)


# --- report -----------------------------------------------------------------------------


def ceiling_of(args: argparse.Namespace) -> tuple[float, int]:
    """(records per second the limit allows with full batches, requests per full batch of records)."""
    _, requests_per_batch = FIELDS[args.field]
    return args.limit / args.window * BATCH / requests_per_batch, requests_per_batch


def report(outcome: Outcome, args: argparse.Namespace) -> None:
    """Print one backend's run."""
    _, requests_per_batch = ceiling_of(args)
    needed = math.ceil(outcome.customers / BATCH) * requests_per_batch
    by_endpoint: Counter[str] = Counter()
    for (method, template, status), n in outcome.requests.items():
        by_endpoint[f"{method} {template.rsplit('/', 1)[-1]} {status}"] += n
    print(
        f"  {outcome.backend}: {outcome.confirmed:,} of {outcome.customers:,} records confirmed in "
        f"{outcome.seconds:.2f} s = {outcome.rate:,.0f} records/s "
        f"(the first after {outcome.first_seconds:.2f} s)"
    )
    print(
        f"    requests: {outcome.total_requests} (full batches need {needed}; "
        + ", ".join(f"{k}: {v}" for k, v in sorted(by_endpoint.items()))
        + f"); 429: {outcome.rejected} = {outcome.rejected_share:.1%}"
    )
    if outcome.profile:
        print("    where the time went (job runs, summed): " + profile_line(outcome))
    if outcome.cpu:
        who = "jobs, scheduler" if outcome.backend == "embedded" else "scheduler"
        parts = {f"this process ({who})": outcome.cpu["this process"]} | {
            name: seconds for name, seconds in outcome.cpu.items() if name != "this process"
        }
        total = sum(parts.values())
        print(
            "    CPU used until all was settled: "
            + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in parts.items())
            + f"; {total:.2f} s in all = {total / outcome.customers * 1000:.2f} ms per record"
        )
    for problem in outcome.problems:
        print(f"    PROBLEM: {problem}")


def profile_line(outcome: Outcome) -> str:
    totals = outcome.profile
    push = totals.get("push jobs (s)", 0.0)
    line = f"{totals.get('push job runs', 0):.0f} push job runs {push:.2f} s"
    if "HTTP requests (s)" in totals:  # the embedded workers log their requests in this process
        http = totals["HTTP requests (s)"]
        wait = totals.get("client rate-limit waits (s)", 0.0)
        line += (
            f", of which HTTP {http:.2f} s and client bucket waits {wait:.2f} s, the rest "
            f"(database, mapping) {push - http - wait:.2f} s"
        )
    if "relay jobs (s)" in totals:  # rq workers log at INFO, and periodic jobs' lines are DEBUG
        line += f"; relay {totals['relay jobs (s)']:.2f} s"
    return line + f"; wall {outcome.seconds:.2f} s"


def summary(args: argparse.Namespace, baseline: Baseline | None, outcomes: list[Outcome]) -> bool:
    """The figures side by side; True when every run met the target."""
    ceiling, requests_per_batch = ceiling_of(args)
    per_request = BATCH // requests_per_batch
    print()
    print(
        f"ceiling:                  {ceiling:8,.0f} records/s ({args.limit / args.window:g} requests/s x "
        f"{per_request} records per request)"
    )
    if baseline is not None:
        share = baseline.rejected / baseline.requests if baseline.requests else 0.0
        print(
            f"baseline, connector only: {baseline.rate:8,.0f} records/s ({baseline.records:,} records in "
            f"{baseline.seconds:.1f} s), {baseline.rate / ceiling:.2f} of the ceiling, "
            f"429: {baseline.rejected} of {baseline.requests} = {share:.1%}; CPU (connector + simulator) "
            f"{baseline.cpu / baseline.requests * 1000:.1f} ms per request of {BATCH} records"
        )
    met_all = True
    for outcome in outcomes:
        ratio = outcome.rate / ceiling
        versus = f", {outcome.rate / baseline.rate:.2f} x baseline" if baseline and baseline.rate else ""
        print(
            f"{outcome.backend + ' jobs, full path:':<26}{outcome.rate:8,.0f} records/s "
            f"({outcome.seconds:.1f} s), {ratio:.2f} of the ceiling{versus}, "
            f"429: {outcome.rejected} of {outcome.total_requests} = {outcome.rejected_share:.1%}, "
            f"lost: {outcome.customers - outcome.confirmed:,}"
        )
        met_all &= ratio >= TARGET_RATIO and outcome.rejected_share < TARGET_429 and not outcome.problems
    print(
        f"target: >= {TARGET_RATIO} of the ceiling, < {TARGET_429:.0%} of requests answered 429, nothing "
        f"lost -> {'MET' if met_all else 'NOT MET'}"
    )
    return met_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sync_throughput", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--customers", type=int, default=10_000, help="customers changed (10000)")
    parser.add_argument("--backend", choices=["embedded", "rq", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2, help="worker threads or rq processes (2)")
    parser.add_argument("--limit", type=int, default=190, help="simulator: requests per window (190)")
    parser.add_argument("--window", type=float, default=10.0, help="simulator: window in seconds (10)")
    parser.add_argument("--field", choices=sorted(FIELDS), default="vat_number", help="what changes")
    parser.add_argument(
        "--baseline-windows", type=float, default=3.5, help="how long the connector-only baseline runs (3.5)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="give up on a run after this (s)")
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="PostgreSQL URL to create databases")
    parser.add_argument("--keep", action="store_true", help=f"keep the database {DB_NAME} afterwards")
    args = parser.parse_args(argv)
    logging.getLogger("rq").setLevel(logging.WARNING)  # the scheduler's lock messages
    backends = ["embedded", "rq"] if args.backend == "both" else [args.backend]
    print(
        f"Sync-throughput benchmark: {args.customers:,} changed customers ({args.field}) pushed to the "
        f"HubSpot simulator, rate limit {args.limit} requests per {args.window:g} s, "
        f"{args.workers} worker(s), PostgreSQL ({DB_NAME})"
    )
    baseline = None
    if args.baseline_windows > 0:
        baseline = connector_baseline(args, args.baseline_windows * args.window)
        print(
            f"  baseline: the connector alone, full batch updates of {BATCH} contacts as fast as its "
            f"bucket allows for {baseline.seconds:.1f} s: {baseline.rate:,.0f} records/s"
        )
    outcomes = []
    for backend in backends:
        outcome = run(args, backend)
        report(outcome, args)
        outcomes.append(outcome)
    met = summary(args, baseline, outcomes)
    if any(outcome.problems for outcome in outcomes):
        print("FAILED: records were lost, doubled or left behind; the figures do not count")
        return 1
    return 0 if met else 3


if __name__ == "__main__":
    sys.exit(main())
