"""Webhook-ingest benchmark: signed HubSpot webhooks into Abohub under gunicorn on PostgreSQL.

Run it with ``python -m bench.webhook_ingest`` (``--help`` for options). It

1. creates a fresh database ``abohub_bench_webhooks`` on the local PostgreSQL
   server, migrates it, and creates a HubSpot connection whose client secret
   the benchmark knows (the config is encrypted with a throwaway key, as in
   production);
2. starts two gunicorn servers with the **same settings** (worker class
   ``gthread``, ``--workers`` × ``--threads``, keep-alive): the real app
   (``wsgi:app``, configured through ``ABOHUB_*`` variables like an operator
   would: PostgreSQL, no Redis, so the processing job goes to the embedded
   database queue, and no worker runs it), and the **baseline**, a bare Flask
   app whose endpoint reads the body and answers 200. By default 2 workers
   (one per core: a worker runs Python on one core at a time) × 8 threads (16
   in all, so every client connection is served while others wait on
   PostgreSQL);
3. drives each with ``--concurrency`` client threads (16), each on its own
   keep-alive HTTP/1.1 connection over a plain socket, replaced every
   ``--per-connection`` requests (50, see ``PER_CONNECTION``): the requests are built
   and signed before the clock starts (v3 signature with a current timestamp,
   one distinct event per request: a unique ``eventId``), so the client only
   sends bytes and reads the status line and ``Content-Length`` body. Every
   round warms both servers up, then times the bare endpoint and Abohub in
   turn; latencies are measured client-side, from sending a request to having
   read its whole response;
4. checks that every Abohub answer was 200, that every event sent (warm-ups
   included) is stored exactly once in ``webhook_receipts``, and that exactly
   one ``process_webhooks`` job (id ``webhooks:{connection_id}``) is queued;
5. prints requests/s and p50/p95/p99 latency per target, the CPU the client,
   the servers (also per request: the figure that does not depend on what else
   the machine runs) and the whole machine used while timed, the ratio Abohub/bare
   and whether the targets (ratio ≥ 0.4, p99 < 50 ms) are met; then stops the
   servers and drops its database, whatever happened.

The machine is shared and small (2 cores: client, gunicorn and PostgreSQL
compete for them): compare figures from one run, not across runs.

Exit status: 0 when every check passed and both targets are met, 1 when a check
failed, 3 when the checks passed but a target was missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import gunicorn
from flask import Flask, request
from sqlalchemy import func, select, text

from bench._common import DEFAULT_ADMIN_URL, fresh_database
from config import load_settings
from connectors.hubspot.connector import sign_v3
from hub.bootstrap import build
from hub.services.connections import CreateConnection, create_connection
from hub.services.crypto import generate_key
from hub.store.migrate import upgrade
from hub.store.models import JobRun, WebhookReceipt

DB_NAME = "abohub_bench_webhooks"
ROOT = Path(__file__).resolve().parents[1]
SECRET_KEY = "bench-webhook-ingest-not-a-secret"  # a throwaway database
CLIENT_SECRET = "bench-hubspot-client-secret"
TARGET_RATIO = 0.4
TARGET_P99_MS = 50.0
READY_SECONDS = 30.0
# Each client connection is replaced after this many requests: a gthread worker keeps the keep-alive
# connections it accepted, so 16 connections opened once can land 12 on one worker and 4 on the
# other for the whole run; replacing them lets the less busy worker (the first to accept) take more.
PER_CONNECTION = 50
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def create_bare_app() -> Flask:
    """The baseline: read the body, answer 200 (gunicorn: ``bench.webhook_ingest:create_bare_app()``)."""
    app = Flask("bare")

    @app.post("/webhooks/<connection_id>")
    def receive(connection_id: str) -> tuple[str, int]:
        request.get_data(cache=False)
        return "", 200

    @app.get("/health")
    def health() -> str:
        return "ok"

    return app


# --- requests --------------------------------------------------------------------


class Events:
    """Distinct HubSpot v3 deliveries of one event each, signed as HubSpot signs them."""

    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id
        self.next_id = 1_000_000
        self.sent_to_abohub: list[str] = []

    def requests(self, port: int, count: int, *, to_abohub: bool = True) -> list[bytes]:
        path = f"/webhooks/{self.connection_id}"
        url = f"http://127.0.0.1:{port}{path}"
        built = []
        for _ in range(count):
            self.next_id += 1
            event_id = self.next_id
            body = json.dumps(
                [
                    {
                        "eventId": event_id,
                        "subscriptionId": 100_001,
                        "portalId": 62515,
                        "appId": 1160452,
                        "occurredAt": int(time.time() * 1000),
                        "subscriptionType": "contact.propertyChange",
                        "attemptNumber": 0,
                        "objectId": 5_000 + event_id % 997,
                        "changeSource": "CRM_UI",
                        "propertyName": "firstname",
                        "propertyValue": f"Name {event_id}",
                    }
                ],
                separators=(",", ":"),
            ).encode()
            timestamp = str(int(time.time() * 1000))
            signature = sign_v3(CLIENT_SECRET, "POST", url, body, timestamp)
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"X-HubSpot-Request-Timestamp: {timestamp}\r\nX-HubSpot-Signature-v3: {signature}\r\n\r\n"
            )
            built.append(head.encode() + body)
            if to_abohub:
                self.sent_to_abohub.append(str(event_id))
        return built


# --- the client ------------------------------------------------------------------


@dataclass
class Run:
    label: str
    seconds: float
    latencies: list[float]  # seconds, one per request
    statuses: Counter[int]
    client_cpu: float  # seconds of CPU the client process used
    server_cpu: float  # seconds of CPU the server's processes used
    machine_busy: float  # fraction of all cores busy (everything on the machine)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


def _exchange(sock: socket.socket, payload: bytes) -> tuple[int, bool]:
    """Send one request, read its whole response; (status, whether the connection stays open)."""
    sock.sendall(payload)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lowered = head.lower()
    status = int(head[9:12])
    start = lowered.find(b"content-length:")
    end = lowered.find(b"\r\n", start)
    length = int(lowered[start + 15 : end if end >= 0 else None]) if start >= 0 else 0
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-body")
        body += chunk
    return status, b"connection: close" not in lowered


def _client(port: int, work: Iterator[bytes], per_connection: int, tally: Tally) -> None:
    sock: socket.socket | None = None
    used = 0
    try:
        for payload in work:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                used = 0
            began = time.perf_counter()
            status, keep = _exchange(sock, payload)
            tally.latencies.append(time.perf_counter() - began)
            tally.statuses[status] += 1
            used += 1
            if not keep or used == per_connection:
                sock.close()
                sock = None
    except (OSError, ValueError) as exc:
        tally.errors.append(repr(exc))
    finally:
        if sock is not None:
            sock.close()


def _process_cpu(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields_[11]) + int(fields_[12])  # utime, stime
    return total / CLOCK_TICKS


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class Tally:
    """What one client thread saw."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def drive(label: str, server: Server, payloads: list[bytes], concurrency: int, per_connection: int) -> Run:
    """Send every payload from ``concurrency`` threads in parallel (closed loop), each on a keep-alive
    connection that it replaces after ``per_connection`` requests (0: never)."""
    work = iter(payloads)  # shared: next() on a list iterator is atomic under the GIL
    tallies = [Tally() for _ in range(concurrency)]
    threads = [
        threading.Thread(target=_client, args=(server.port, work, per_connection, tally), daemon=True)
        for tally in tallies
    ]
    pids = server.pids()
    server_before, machine_before = _process_cpu(pids), _machine_ticks()
    client_before = _own_cpu()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    client_cpu = _own_cpu() - client_before
    errors = [error for tally in tallies for error in tally.errors]
    if errors:
        raise RuntimeError(f"{label}: {len(errors)} client connections failed, e.g. {errors[0]}")
    busy, total = (after - before for after, before in zip(_machine_ticks(), machine_before, strict=True))
    return Run(
        label,
        seconds,
        [value for tally in tallies for value in tally.latencies],
        sum((tally.statuses for tally in tallies), Counter()),
        client_cpu,
        _process_cpu(pids) - server_before,
        busy / total if total else 0.0,
    )


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the servers -----------------------------------------------------------------


@dataclass
class Server:
    label: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def pids(self) -> list[int]:
        """The gunicorn master and its workers."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
            if parent == self.process.pid:
                children.append(int(stat.parent.name))
        return [self.process.pid, *children]

    def log_tail(self, lines: int = 20) -> str:
        self.log.flush()
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.label} exited:\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.label} did not answer /health within {READY_SECONDS:.0f} s")


@contextmanager
def gunicorn_server(label: str, app: str, args: argparse.Namespace, env: dict[str, str]) -> Iterator[Server]:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "gthread",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--keep-alive",
        "5",
        "--log-level",
        "warning",
    ]
    with tempfile.NamedTemporaryFile(prefix=f"bench-{label}-", suffix=".log") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        server = Server(label, port, process, log)
        try:
            _wait_ready(server)
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def server_env(database_url: str, encryption_key: str, log_level: str) -> dict[str, str]:
    """The process environment with only the benchmark's ``ABOHUB_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABOHUB_")}
    env.update(
        ABOHUB_DATABASE_URL=database_url,
        ABOHUB_SECRET_KEY=SECRET_KEY,
        ABOHUB_ENCRYPTION_KEYS=encryption_key,
        ABOHUB_LOG_LEVEL=log_level,
    )
    return env


# --- checks and figures ----------------------------------------------------------


@dataclass
class Totals:
    runs: list[Run] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(run.rate for run in self.runs)

    def percentile(self, fraction: float) -> float:
        values = sorted(value for run in self.runs for value in run.latencies)
        return values[min(len(values) - 1, int(len(values) * fraction))] * 1000


def check(engine: Any, connection_id: str, sent: list[str], abohub: Totals) -> list[str]:
    problems = []
    statuses = sum((run.statuses for run in abohub.runs), Counter())
    if set(statuses) != {200}:
        problems.append(f"Abohub answered {dict(statuses)}, not only 200")
    with engine.connect() as connection:
        stored = connection.execute(
            select(WebhookReceipt.event_id, func.count())
            .where(WebhookReceipt.connection_id == connection_id)
            .group_by(WebhookReceipt.event_id)
        ).all()
        jobs = connection.execute(select(JobRun.id, JobRun.function, JobRun.status, JobRun.args)).all()
    doubled = [event_id for event_id, copies in stored if copies != 1]
    missing = set(sent) - {event_id for event_id, _ in stored}
    extra = {event_id for event_id, _ in stored} - set(sent)
    if doubled or missing or extra:
        problems.append(
            f"receipts: {len(doubled)} stored more than once, {len(missing)} missing, {len(extra)} unexpected"
        )
    expected = (f"webhooks:{connection_id}", "process_webhooks", "queued", {"connection_id": connection_id})
    if [tuple(job) for job in jobs] != [expected]:
        problems.append(f"jobs: expected exactly {expected}, found {[tuple(job) for job in jobs]}")
    return problems


def describe_run(run: Run) -> str:
    values = sorted(run.latencies)

    def at(fraction: float) -> float:
        return values[min(len(values) - 1, int(len(values) * fraction))] * 1000

    return (
        f"{len(values):>6,} req in {run.seconds:5.2f} s: {run.rate:7.0f} req/s; "
        f"p50 {at(0.5):5.1f} ms, p95 {at(0.95):5.1f} ms, p99 {at(0.99):5.1f} ms; "
        f"CPU client {run.client_cpu / run.seconds:4.0%}, server {run.server_cpu / run.seconds:4.0%} "
        f"(of one core; {run.server_cpu / len(values) * 1000:.2f} ms a request), "
        f"machine {run.machine_busy:4.0%} busy"
    )


# --- main ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--requests", type=int, default=6_000, help="timed requests per target and round")
    parser.add_argument("--warmup", type=int, default=500, help="untimed requests per target and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (bare, then Abohub, in each)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--per-connection",
        type=int,
        default=PER_CONNECTION,
        help="requests per client connection before it is replaced (0: keep each for the whole run)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (both servers)")
    parser.add_argument("--threads", type=int, default=8, help="gthread threads per worker (both servers)")
    parser.add_argument("--log-level", default="INFO", help="Abohub's ABOHUB_LOG_LEVEL (INFO: a line each)")
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="a PostgreSQL database to connect to")
    parser.add_argument("--keep", action="store_true", help=f"keep the database {DB_NAME} afterwards")
    args = parser.parse_args(argv)

    encryption_key = generate_key()
    with fresh_database(args.admin_url, DB_NAME, keep=args.keep) as url, ExitStack() as stack:
        settings = load_settings(
            {}, database_url=url, secret_key=SECRET_KEY, encryption_keys=(encryption_key,)
        )
        hub = build(settings)
        stack.callback(hub.close)
        upgrade(hub.engine)
        connection = create_connection(
            CreateConnection(
                "hubspot", "HubSpot (bench)", {"access_token": "pat-bench", "client_secret": CLIENT_SECRET}
            ),
            hub.uow("bench"),
        )
        with hub.engine.connect() as db:
            version = db.execute(text("SHOW server_version")).scalar_one()
            commit = db.execute(text("SHOW synchronous_commit")).scalar_one()
        env = server_env(url, encryption_key, args.log_level)
        bare_server = stack.enter_context(
            gunicorn_server("bare", "bench.webhook_ingest:create_bare_app()", args, env)
        )
        abohub_server = stack.enter_context(gunicorn_server("abohub", "wsgi:app", args, env))
        print(
            f"gunicorn {gunicorn.__version__} gthread, {args.workers} workers × {args.threads} threads "
            f"(both servers); PostgreSQL {version} (synchronous_commit={commit}); Abohub log level "
            f"{args.log_level}; client: {args.concurrency} threads, each on a keep-alive HTTP/1.1 socket "
            f"replaced every {args.per_connection or '∞'} requests, "
            f"requests pre-built and signed; one event per request"
        )
        events = Events(connection.id)
        bare, abohub = Totals(), Totals()
        for round_ in range(1, args.rounds + 1):
            warm = events.requests(abohub_server.port, args.warmup)
            drive("warm-up", bare_server, warm, args.concurrency, args.per_connection)
            drive("warm-up", abohub_server, warm, args.concurrency, args.per_connection)
            payloads = events.requests(bare_server.port, args.requests, to_abohub=False)
            bare.runs.append(drive("bare", bare_server, payloads, args.concurrency, args.per_connection))
            print(f"  round {round_} bare Flask endpoint   {describe_run(bare.runs[-1])}")
            timed = events.requests(abohub_server.port, args.requests)
            abohub.runs.append(drive("abohub", abohub_server, timed, args.concurrency, args.per_connection))
            print(
                f"  round {round_} Abohub webhook ingest {describe_run(abohub.runs[-1])}; "
                f"ratio {abohub.runs[-1].rate / bare.runs[-1].rate:.2f}"
            )
        sent = events.sent_to_abohub
        problems = check(hub.engine, connection.id, sent, abohub)
        for problem in problems:
            print(f"CHECK FAILED: {problem}")
        if problems:
            print(abohub_server.log_tail())
            return 1
        print(
            f"check: every Abohub answer was 200; all {len(sent):,} events sent to Abohub are stored "
            f"exactly once; exactly one process_webhooks job is queued (webhooks:{connection.id})"
        )
        return report(bare, abohub, args.concurrency)


def report(bare: Totals, abohub: Totals, concurrency: int) -> int:
    """The figures; the ratio is the median of each round's own ratio (the two ran back to back)."""
    ratio = statistics.median(a.rate / b.rate for a, b in zip(abohub.runs, bare.runs, strict=True))
    p99 = abohub.percentile(0.99)
    ratio_met, p99_met = ratio >= TARGET_RATIO, p99 < TARGET_P99_MS
    rounds = len(abohub.runs)
    for name, totals in (("bare Flask endpoint", bare), ("Abohub webhook ingest", abohub)):
        print(
            f"  {name:<22} median {totals.rate:7.0f} req/s over {rounds} rounds; all requests: "
            f"p50 {totals.percentile(0.5):5.1f} ms, p95 {totals.percentile(0.95):5.1f} ms, "
            f"p99 {totals.percentile(0.99):5.1f} ms"
        )
    print(
        f"\nWEBHOOK INGEST (verify + store + queue + ack, concurrency {concurrency}): "
        f"{abohub.rate:.0f} req/s vs bare {bare.rate:.0f} req/s (medians); ratio {ratio:.2f} "
        f"(target ≥ {TARGET_RATIO}: {'MET' if ratio_met else 'MISSED'}); p99 {p99:.1f} ms "
        f"(target < {TARGET_P99_MS:.0f} ms: {'MET' if p99_met else 'MISSED'})."
    )
    return 0 if ratio_met and p99_met else 3


if __name__ == "__main__":
    sys.exit(main())
