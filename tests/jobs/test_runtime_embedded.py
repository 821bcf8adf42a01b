"""The embedded runtime: the worker runs registered jobs, retries with growing delays, survives its death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.store.models import JobRun
from jobs.embedded import start_embedded
from jobs.queue import DatabaseQueue
from jobs.registry import job
from jobs.retry import RetryPolicy
from jobs.rq_backend import RedisQueue
from jobs.runtime import EmbeddedQueue, embedded_queue, make_queue
from jobs.schedule import Periodic
from jobs.worker import EmbeddedWorker
from tests.conftest import make_hub

ROOT = Path(__file__).resolve().parents[2]
RAN: list[str] = []
GATES: dict[str, threading.Event] = {}


@job("test_runtime_record")
def record(hub, value: str) -> None:  # type: ignore[no-untyped-def]
    RAN.append(value)


@job("test_runtime_fail")
def fail(hub, value: str) -> None:  # type: ignore[no-untyped-def]
    RAN.append(value)
    raise RuntimeError("HubSpot answered 503")


@job("test_runtime_wait")
def wait(hub, value: str) -> None:  # type: ignore[no-untyped-def]
    RAN.append(value)
    assert GATES[value].wait(10), "the test never opened the gate"


@job("test_runtime_touch_own_id")
def touch_own_id(hub, value: str) -> None:  # type: ignore[no-untyped-def]
    """Like a push job whose record changes again while it runs."""
    RAN.append(value)
    if RAN.count(value) == 1:
        make_queue(hub).enqueue("test_runtime_touch_own_id", {"value": value}, f"touch:{value}")


@job("test_runtime_sleep_marker")
def sleep_marker(hub, marker: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """For worker processes: say it started (a file), then take its time."""
    Path(marker).write_text("started")
    time.sleep(seconds)


@pytest.fixture(autouse=True)
def _clean() -> None:
    RAN.clear()
    GATES.clear()


@pytest.fixture
def queue(hub):  # type: ignore[no-untyped-def]
    return embedded_queue(hub)


def row(hub, job_id: str) -> JobRun:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        found = session.scalar(select(JobRun).where(JobRun.id == job_id))
        assert found is not None
        return found


def test_make_queue_picks_the_database_without_redis_and_rq_with_it(hub, database):
    assert isinstance(make_queue(hub), EmbeddedQueue)
    with_redis = make_hub(database, redis_url="redis://127.0.0.1:6379/0")
    try:
        assert isinstance(make_queue(with_redis), RedisQueue)
        assert start_embedded(with_redis) is None  # rq workers run the jobs, not serve
    finally:
        with_redis.close()


def test_the_worker_runs_a_registered_job_and_finishes_it(hub, queue):
    assert queue.enqueue("test_runtime_record", {"value": "a"}, "record:a")
    worker = EmbeddedWorker(hub, queue)
    assert worker.step() is True
    assert RAN == ["a"]
    assert row(hub, "record:a").status == "done"
    assert worker.step() is False


def test_a_failing_job_is_retried_with_growing_delays_then_failed_with_its_reason(hub, clock, queue):
    policy = RetryPolicy(max_attempts=4, base=timedelta(seconds=10), jitter=0.25)
    worker = EmbeddedWorker(hub, queue, policy)
    queue.enqueue("test_runtime_fail", {"value": "x"}, "fail:x")
    delays = []
    for attempt in range(1, 4):
        assert worker.step() is True
        run = row(hub, "fail:x")
        assert (run.status, run.attempts, run.last_error) == (
            "queued",
            attempt,
            "RuntimeError: HubSpot answered 503",
        )
        delay = (run.run_at.replace(tzinfo=UTC) - clock.now()).total_seconds()
        plain = 10 * 2 ** (attempt - 1)
        assert 0.75 * plain <= delay <= 1.25 * plain
        delays.append(delay)
        assert worker.step() is False  # not before its time
        clock.set(clock.now() + timedelta(seconds=delay))
    assert delays == sorted(delays)
    assert worker.step() is True  # the fourth and last attempt
    run = row(hub, "fail:x")
    assert (run.status, run.attempts, run.last_error) == ("failed", 4, "RuntimeError: HubSpot answered 503")
    clock.set(clock.now() + timedelta(days=1))
    assert worker.step() is False
    assert RAN == ["x"] * 4


def test_deterministic_ids_coalesce_and_a_change_during_a_run_gives_one_more_run(hub, queue):
    for _ in range(3):
        queue.enqueue("test_runtime_record", {"value": "c"}, "record:c")
    worker = EmbeddedWorker(hub, queue)
    assert worker.step() and not worker.step()
    assert RAN == ["c"]

    RAN.clear()
    queue.enqueue("test_runtime_touch_own_id", {"value": "t"}, "touch:t")
    assert worker.step()  # the job queues its own id while it runs…
    assert row(hub, "touch:t").status == "queued"
    assert worker.step()  # …so it runs once more, and then it is done
    assert not worker.step()
    assert RAN == ["t", "t"]


def test_a_long_job_keeps_its_lease_while_it_runs(hub, clock):
    queue = EmbeddedQueue(hub.session_factory, clock, lease=timedelta(seconds=0.3))
    other = DatabaseQueue(hub.session_factory, clock, lease=timedelta(seconds=0.3))
    GATES["long"] = threading.Event()
    queue.enqueue("test_runtime_wait", {"value": "long"}, "wait:long")
    worker = EmbeddedWorker(hub, queue, idle_seconds=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while RAN != ["long"] and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(3):  # ten minutes pass, three times: the lease is renewed each time
            clock.set(clock.now() + timedelta(minutes=10))
            time.sleep(0.35)
            assert other.take() is None
        GATES["long"].set()
    finally:
        assert worker.stop(timeout=5)
    assert row(hub, "wait:long").status == "done" and RAN == ["long"]


def test_a_job_whose_worker_died_runs_again_once_its_lease_ends(hub, clock, queue):
    queue.enqueue("test_runtime_record", {"value": "d"}, "record:d")
    taken = queue.take()  # a worker takes it and dies without a word
    assert taken is not None
    worker = EmbeddedWorker(hub, queue)
    assert worker.step() is False
    clock.set(clock.now() + queue.lease - timedelta(seconds=1))
    assert worker.step() is False
    clock.set(clock.now() + timedelta(seconds=2))
    assert worker.step() is True
    assert RAN == ["d"] and row(hub, "record:d").status == "done"


def _worker_process(database_url: str, script: str) -> subprocess.Popen[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ABOHUB_")}
    environment.update(ABOHUB_DATABASE_URL=database_url, ABOHUB_TESTING="true")
    return subprocess.Popen(
        [sys.executable, "-c", f"import tests.jobs.test_runtime_embedded\n{script}"],
        cwd=ROOT,
        env=environment,
        start_new_session=True,
    )


def _wait_for(path: Path, process: subprocess.Popen[bytes], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, "the worker process ended early"
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)


RUN_WORKER = """
from config import load_settings
from hub.bootstrap import build
from jobs.runtime import embedded_queue
from jobs.worker import EmbeddedWorker
hub = build(load_settings())
EmbeddedWorker(hub, embedded_queue(hub), idle_seconds=0.05).run()
"""


def test_a_worker_process_killed_mid_job_loses_nothing_and_the_job_runs_again_after_the_lease(
    hub, clock, queue, tmp_path
):
    """SIGKILL a real worker process holding a job; the next worker takes it once the lease (60 s) ends."""
    clock.set(datetime.now(UTC))  # the dying worker runs on the system clock; ours moves from there
    marker = tmp_path / "started"
    queue.enqueue("test_runtime_sleep_marker", {"marker": str(marker), "seconds": 60}, "sleepy")
    process = _worker_process(hub.settings.database_url, RUN_WORKER)
    try:
        _wait_for(marker, process)
        taken_before = datetime.now(UTC)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    killed_at = datetime.now(UTC)
    run = row(hub, "sleepy")
    assert (run.status, run.attempts) == ("running", 1)

    clock.set(taken_before + queue.lease - timedelta(seconds=1))
    assert queue.take() is None  # nobody runs it while the lease may still be held
    clock.set(killed_at + queue.lease + timedelta(seconds=1))
    again = queue.take()  # one lease after the death, the next worker does
    assert again is not None and again.id == "sleepy" and again.attempts == 2


def test_sigterm_lets_the_job_in_hand_finish(hub, tmp_path):
    marker = tmp_path / "started"
    queue = embedded_queue(hub)
    queue.enqueue("test_runtime_sleep_marker", {"marker": str(marker), "seconds": 0.5}, "graceful")
    script = RUN_WORKER.replace(
        "EmbeddedWorker(hub, embedded_queue(hub), idle_seconds=0.05).run()",
        "from jobs.embedded import start_embedded\n"
        "import threading\n"
        "start_embedded(hub, scheduler=False).stop_on_signals()\n"
        "threading.Event().wait(30)\n",
    )
    process = _worker_process(hub.settings.database_url, script)
    try:
        _wait_for(marker, process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert row(hub, "graceful").status == "done"


def test_start_embedded_runs_the_scheduler_and_the_worker_and_wakes_on_new_work(hub):
    schedule = [Periodic("every_hour", "test_runtime_record", timedelta(hours=1), {"value": "periodic"})]
    runtime = start_embedded(hub, schedule=schedule)
    assert runtime is not None
    try:
        deadline = time.monotonic() + 5
        while "periodic" not in RAN and time.monotonic() < deadline:
            time.sleep(0.01)
        assert RAN == ["periodic"]
        runtime.workers[0].idle_seconds = 30  # from now on only the doorbell can wake it in time
        time.sleep(1.1)  # (the idle wait begun before this is over)
        started = time.monotonic()
        embedded_queue(hub).enqueue("test_runtime_record", {"value": "rung"}, "record:rung")
        while "rung" not in RAN and time.monotonic() < started + 5:
            time.sleep(0.005)
        assert "rung" in RAN and time.monotonic() - started < 3  # not the 30 s idle wait
    finally:
        assert runtime.stop(timeout=5)
    assert RAN == ["periodic", "rung"]
