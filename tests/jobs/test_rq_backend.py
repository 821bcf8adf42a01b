"""The rq backend on a real Redis: deterministic ids, one run per id, retries, recovery after SIGKILL.

Each test has its own key prefix (rq queue names, job ids, our keys) and
removes every key carrying it. Tests that start real worker processes run on
PostgreSQL only (rq with PostgreSQL is the production pairing).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from rq import SimpleWorker
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from hub.services.clock import SystemClock
from jobs.registry import job
from jobs.retry import RetryPolicy
from jobs.rq_backend import RedisQueue, rq_job_id
from jobs.rq_worker import install_hub
from jobs.schedule import Scheduler
from tests.conftest import make_hub

REDIS_URL = os.environ.get("ABOHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]


def _redis(hub) -> redis.Redis:  # type: ignore[no-untyped-def]
    return redis.Redis.from_url(hub.settings.redis_url)


@job("test_rq_count")
def count(hub, key: str) -> None:  # type: ignore[no-untyped-def]
    _redis(hub).incr(key)


@job("test_rq_fail")
def fail(hub, key: str) -> None:  # type: ignore[no-untyped-def]
    _redis(hub).incr(key)
    raise RuntimeError("HubSpot answered 503")


@job("test_rq_block")
def block(hub, key: str) -> None:  # type: ignore[no-untyped-def]
    """Say it started, wait to be released, then have its effect."""
    connection = _redis(hub)
    connection.incr(f"{key}:started")
    deadline = time.monotonic() + 30
    while connection.blpop([f"{key}:release"], timeout=1) is None:  # (redis-py's socket timeout is 5 s)
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
    connection.incr(f"{key}:done")


@job("test_rq_deaf")
def deaf(hub, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """A job that ignores rq's soft time limit (SIGALRM), as C code or a stuck socket can."""
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    time.sleep(seconds)


@pytest.fixture
def connection() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def prefix(connection: redis.Redis) -> Iterator[str]:
    value = f"abohubtest-{uuid.uuid4().hex[:10]}"
    yield value
    keys = list(connection.scan_iter(match=f"*{value}*"))
    if keys:
        connection.delete(*keys)
    for registry in ("rq:queues", "rq:workers"):
        stale = [m for m in connection.smembers(registry) if value.encode() in m]
        if stale:
            connection.srem(registry, *stale)


@pytest.fixture
def queue(connection: redis.Redis, prefix: str) -> RedisQueue:
    return RedisQueue(connection, prefix=prefix, policy=RetryPolicy(max_attempts=3))


@pytest.fixture
def rq_hub(database: str, prefix: str):  # type: ignore[no-untyped-def]
    """A Hub wired to Redis, as an rq worker process builds it; installed for in-process workers."""
    instance = make_hub(database, redis_url=REDIS_URL, redis_prefix=prefix, job_max_attempts=3)
    install_hub(instance)
    yield instance
    install_hub(None)
    instance.close()


def _int(connection: redis.Redis, key: str) -> int:
    return int(connection.get(key) or 0)


def _burst(queue: RedisQueue) -> None:
    SimpleWorker(queue.rq_queues(), connection=queue.connection).work(burst=True)


def _env(hub, **settings: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ABOHUB_")}
    environment.update(
        ABOHUB_DATABASE_URL=hub.settings.database_url,
        ABOHUB_REDIS_URL=REDIS_URL,
        ABOHUB_REDIS_PREFIX=hub.settings.redis_prefix,
        ABOHUB_TESTING="true",
        ABOHUB_LOG_LEVEL="WARNING",
    )
    environment.update({f"ABOHUB_{name.upper()}": value for name, value in settings.items()})
    return environment


def _abohub_worker(hub, log: Path, *args: str, **settings: str) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    """``abohub worker`` in its own process group, knowing this module's test jobs."""
    code = f"import tests.jobs.test_rq_backend\nfrom hub.cli import main\nmain(['worker', *{list(args)!r}])"
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=_env(hub, **settings),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _until(condition: Callable[[], bool], seconds: float, what: str, log: Path | None = None) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            shown = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"{what}: not within {seconds} s\n{shown}")
        time.sleep(0.02)
    return time.monotonic() - started


# -- ids and de-duplication -------------------------------------------------------------


def test_the_same_id_is_queued_once_under_a_readable_rq_id(queue):
    assert queue.enqueue("test_rq_count", {"key": "k"}, "push:con_1:customer:cus_1") is True
    assert queue.enqueue("test_rq_count", {"key": "k"}, "push:con_1:customer:cus_1") is False
    assert queue.pending() == 1
    found = queue.fetch("push:con_1:customer:cus_1")
    assert found is not None
    assert found.id.startswith(f"{queue.prefix}-push-con_1-customer-cus_1-")
    assert found.meta["abohub_id"] == "push:con_1:customer:cus_1"
    assert found.description == "test_rq_count push:con_1:customer:cus_1"  # what rq logs: never the arguments
    assert found.origin == f"{queue.prefix}-default"
    assert rq_job_id("p", "a:b") != rq_job_id("p", "a-b")


def test_a_later_run_at_leaves_a_waiting_job_and_an_earlier_one_moves_it_forward(queue):
    now = datetime.now(UTC)
    assert queue.enqueue("test_rq_count", {"key": "k"}, "later", run_at=now + timedelta(hours=1))
    found = queue.fetch("later")
    assert found is not None and found.get_status() == JobStatus.SCHEDULED
    registry = ScheduledJobRegistry(queue=queue.rq_queue())

    def due_in() -> float:
        return registry.get_expiration_time(found).timestamp() - now.timestamp()

    assert 3590 < due_in() <= 3600
    assert queue.enqueue("test_rq_count", {"key": "k"}, "later", run_at=now + timedelta(hours=2)) is False
    assert 3590 < due_in() <= 3600
    assert queue.enqueue("test_rq_count", {"key": "k"}, "later", run_at=now + timedelta(minutes=10)) is False
    assert 590 < due_in() <= 600
    assert queue.enqueue("test_rq_count", {"key": "k"}, "later") is False
    assert due_in() <= 1
    assert queue.pending() == 1


def test_a_job_is_run_once_and_can_then_be_queued_again(rq_hub, queue, connection, prefix):
    key = f"{prefix}:count"
    for _ in range(3):
        queue.enqueue("test_rq_count", {"key": key}, "count:1")
    _burst(queue)
    assert _int(connection, key) == 1
    assert queue.pending() == 0 and queue.fetch("count:1") is None  # finished jobs are not kept
    assert queue.enqueue("test_rq_count", {"key": key}, "count:1") is True
    _burst(queue)
    assert _int(connection, key) == 2


def test_a_failing_job_is_retried_with_growing_intervals_then_lands_in_the_failed_registry(
    rq_hub, queue, connection, prefix
):
    key = f"{prefix}:fail"
    queue.enqueue("test_rq_fail", {"key": key}, "fail:1")
    scheduled = ScheduledJobRegistry(queue=queue.rq_queue())
    waits = []
    for attempt in (1, 2):
        _burst(queue)
        assert _int(connection, key) == attempt
        found = queue.fetch("fail:1")
        assert found is not None and found.get_status() == JobStatus.SCHEDULED
        waits.append(scheduled.get_expiration_time(found).timestamp() - time.time())
        # The wait passes (we move its time instead of sleeping); the scheduler's chores queue it.
        connection.zadd(scheduled.key, {found.id: int(time.time()) - 1})
        queue.maintain()
        assert found.get_status() == JobStatus.QUEUED
    assert 6 <= waits[0] <= 13 and 14 <= waits[1] <= 26 and waits[0] < waits[1]  # 10 s, 20 s, ± 25 %
    _burst(queue)
    assert _int(connection, key) == 3
    failed = FailedJobRegistry(queue=queue.rq_queue())
    found = queue.fetch("fail:1")
    assert found is not None and found.id in failed.get_job_ids()
    result = found.latest_result()
    assert result is not None and "RuntimeError: HubSpot answered 503" in (result.exc_string or "")
    assert queue.enqueue("test_rq_fail", {"key": key}, "fail:1") is True  # queued afresh, like the database
    assert found.id not in failed.get_job_ids()
    queue.release()


def test_a_run_that_already_closed_makes_the_next_enqueue_wait_for_it_then_queue_afresh(queue):
    queue.enqueue("test_rq_count", {"key": "k"}, "closing")
    found = queue.fetch("closing")
    assert found is not None
    markers = queue.markers("closing")
    markers.open()  # the run starts…
    found.set_status(JobStatus.STARTED)
    assert markers.close() is None  # …and has passed its last look for more work; rq has not ended it yet
    threading.Timer(0.1, found.delete).start()  # rq ends it a moment later
    started = time.monotonic()
    assert queue.enqueue("test_rq_count", {"key": "k"}, "closing") is True
    assert 0.05 < time.monotonic() - started < 1
    assert queue.fetch("closing").get_status() == JobStatus.QUEUED  # type: ignore[union-attr]
    markers.open()
    assert markers.ask_again({"key": "k"}) is True and markers.close() == {"key": "k"}


# -- real worker processes -------------------------------------------------------------------


def test_abohub_worker_without_redis_says_what_to_do(tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ABOHUB_")}
    environment["ABOHUB_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "worker"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "ABOHUB_REDIS_URL is not set" in result.stderr and "abohub serve" in result.stderr


@pytest.mark.postgres_only
def test_abohub_worker_runs_each_job_once_and_a_change_during_a_run_gives_one_more(
    rq_hub, queue, connection, prefix, tmp_path
):
    log = tmp_path / "worker.log"
    key = f"{prefix}:block"
    for _ in range(2):
        queue.enqueue("test_rq_count", {"key": f"{prefix}:count"}, "count:2")
    queue.enqueue("test_rq_block", {"key": key}, "block:1")
    process = _abohub_worker(rq_hub, log, "--burst")
    try:
        _until(lambda: _int(connection, f"{key}:started") == 1, 20, "the blocking job started", log)
        assert queue.enqueue("test_rq_block", {"key": key}, "block:1") is False  # it runs: once more after
        connection.rpush(f"{key}:release", "go", "go")
        assert process.wait(timeout=20) == 0, log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert _int(connection, f"{prefix}:count") == 1
    assert (_int(connection, f"{key}:started"), _int(connection, f"{key}:done")) == (2, 2)
    assert queue.pending() == 0


@pytest.mark.postgres_only
def test_a_worker_killed_mid_job_is_recovered_within_the_lease_and_its_effect_happens_once(
    rq_hub, connection, prefix, tmp_path
):
    """SIGKILL the worker process mid-job (its work-horse dies with it); the scheduler recovers the job."""
    lease = 3
    settings = {"job_lease_seconds": str(lease), "job_retry_base_seconds": "1", "job_max_attempts": "3"}
    queue = RedisQueue(
        connection, prefix=prefix, policy=RetryPolicy(max_attempts=3, base=timedelta(seconds=1))
    )
    scheduler = Scheduler(queue, SystemClock(), schedule=(), maintenance=queue.maintain, tick_seconds=0.1)
    scheduler.start()  # the one `abohub scheduler`, already running when the worker starts
    log = tmp_path / "worker.log"
    key = f"{prefix}:block"
    try:
        queue.enqueue("test_rq_block", {"key": key}, "block:kill")
        process = _abohub_worker(rq_hub, log, **settings)
        try:
            _until(lambda: _int(connection, f"{key}:started") == 1, 20, "the job started", log)
            time.sleep(1.2)  # let it run past a heartbeat or two
        finally:
            os.kill(process.pid, signal.SIGKILL)  # the worker; rq's work-horse is in a group of its own
            process.wait()
        killed = time.monotonic()
        found = queue.fetch("block:kill")
        assert found is not None and found.get_status() == JobStatus.STARTED
        assert found.id in StartedJobRegistry(queue=queue.rq_queue())  # abandoned, not yet noticed

        waited = _until(lambda: found.get_status() != JobStatus.STARTED, lease + 5, "recovered", log)
        assert lease - 1.5 <= waited <= lease + 1  # noticed once the lease after the last heartbeat ran out
        assert found.get_status() in (JobStatus.SCHEDULED, JobStatus.QUEUED)  # its retry, after 1 s
        _until(lambda: found.get_status() == JobStatus.QUEUED, 3, "the retry is due and queued")
        requeued_after = time.monotonic() - killed

        connection.rpush(f"{key}:release", "go")
        again = _abohub_worker(rq_hub, log, "--burst", **settings)
        assert again.wait(timeout=20) == 0, log.read_text()
    finally:
        scheduler.stop(timeout=5)
    assert (_int(connection, f"{key}:started"), _int(connection, f"{key}:done")) == (2, 1)  # the effect: once
    assert queue.pending() == 0
    assert requeued_after <= lease + 1 + 1.5  # lease + tick + first retry interval (1 s, rounded)
    print(f"lease {lease} s: noticed {waited:.2f} s after SIGKILL, queued again after {requeued_after:.2f} s")


@pytest.mark.postgres_only
def test_a_job_that_ignores_its_time_limit_has_its_work_horse_killed(rq_hub, connection, prefix, tmp_path):
    settings = {"job_time_limit_seconds": "1", "job_lease_seconds": "3", "job_max_attempts": "1"}
    queue = RedisQueue(connection, prefix=prefix, policy=RetryPolicy(max_attempts=1), time_limit=1)
    queue.enqueue("test_rq_deaf", {"seconds": 30}, "deaf")
    log = tmp_path / "worker.log"
    code = (
        "import tests.jobs.test_rq_backend\n"
        "from config import load_settings\n"
        "from jobs.rq_worker import HardLimitWorker, run_worker\n"
        "HardLimitWorker.grace_seconds = 1\n"
        "run_worker(load_settings(), burst=True)\n"
    )
    started = time.monotonic()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=_env(rq_hub, **settings),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert process.wait(timeout=20) == 0, log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert time.monotonic() - started < 10  # not the 30 s the job wanted
    found = queue.fetch("deaf")
    assert found is not None and found.get_status() == JobStatus.FAILED
    assert "past its time limit" in log.read_text()
