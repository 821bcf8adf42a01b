"""Periodic jobs as data: each slot is queued once, whatever number of schedulers ask, on both backends."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from hub.services.clock import FixedClock
from hub.store.models import JobRun
from jobs.rq_backend import RedisQueue
from jobs.runtime import Every, embedded_queue, make_scheduler, purge_finished
from jobs.schedule import SCHEDULE, Periodic, Scheduler

REDIS_URL = os.environ.get("ABOHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]
NAMES = {p.name for p in SCHEDULE}


@pytest.fixture
def redis_queue() -> Iterator[RedisQueue]:
    connection = redis.Redis.from_url(REDIS_URL)
    prefix = f"abohubtest-{uuid.uuid4().hex[:10]}"
    try:
        yield RedisQueue(connection, prefix=prefix)
    finally:
        keys = list(connection.scan_iter(match=f"*{prefix}*"))
        if keys:
            connection.delete(*keys)
        for queue in ("default", "long"):
            connection.srem("rq:queues", f"rq:queue:{prefix}-{queue}")
        connection.close()


def job_ids(hub) -> list[str]:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return sorted(session.scalars(select(JobRun.id)))


def test_the_schedule_declares_the_periodic_jobs():
    every = {p.name: (p.function, p.every, p.queue) for p in SCHEDULE}
    assert every == {
        "relay_outbox": ("relay_outbox", timedelta(seconds=5), "default"),
        "repair_sync_states": ("repair_sync_states", timedelta(seconds=15), "default"),
        "poll_connections": ("poll_connections", timedelta(minutes=1), "default"),
        "repair_webhook_receipts": ("repair_webhook_receipts", timedelta(minutes=1), "default"),
        "run_billing": ("run_billing", timedelta(hours=1), "long"),
        "reconcile_connections": ("reconcile_connections", timedelta(days=1), "long"),
    }


def test_the_nightly_reconcile_is_queued_once_a_night_from_two_o_clock_utc(hub, clock):
    nightly = next(p for p in SCHEDULE if p.name == "reconcile_connections")
    assert (nightly.offset, nightly.start_within) == (timedelta(hours=2), timedelta(hours=6))
    clock.set(datetime(2026, 3, 1, 1, 59, tzinfo=UTC))
    scheduler = Scheduler(embedded_queue(hub), clock, schedule=[nightly])
    assert scheduler.tick() == []  # the night before's slot is long past its start window
    for minutes, queued in ((1, True), (60, False), (24 * 60, False), (24 * 60 + 1, True)):
        clock.set(datetime(2026, 3, 1, 1, 59, tzinfo=UTC) + timedelta(minutes=minutes))
        assert bool(scheduler.tick()) is queued, clock.now()


@pytest.mark.parametrize(
    ("started", "queued"),
    [(datetime(2026, 3, 1, 7, 59, tzinfo=UTC), True), (datetime(2026, 3, 1, 15, 0, tzinfo=UTC), False)],
    ids=["down-at-two-back-by-eight", "started-in-the-afternoon"],
)
def test_a_scheduler_started_later_in_the_day_leaves_the_reconcile_for_the_night(hub, clock, started, queued):
    nightly = next(p for p in SCHEDULE if p.name == "reconcile_connections")
    clock.set(started)
    scheduler = Scheduler(embedded_queue(hub), clock, schedule=[nightly])
    assert scheduler.tick() == ([nightly.job_id(started)] if queued else [])
    clock.set(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    assert scheduler.tick() == [nightly.job_id(clock.now())]  # the next night runs either way


def test_slot_ids_depend_only_on_the_name_and_the_slot():
    relay = Periodic("relay_outbox", "relay_outbox", timedelta(seconds=5))
    at = datetime(2026, 3, 1, 3, 0, 0, tzinfo=UTC)
    assert (
        relay.job_id(at)
        == relay.job_id(at + timedelta(seconds=4.9))
        == f"periodic:relay_outbox:{at.timestamp() // 5:.0f}"
    )
    assert relay.job_id(at + timedelta(seconds=5)) != relay.job_id(at)
    nightly = Periodic("reconcile", "reconcile_connections", timedelta(days=1), offset=timedelta(hours=2))
    day = datetime(2026, 3, 1, 1, 59, tzinfo=UTC)
    assert nightly.slot(day) + 1 == nightly.slot(day + timedelta(minutes=1))  # the night begins at 02:00 UTC
    with pytest.raises(ValueError, match="unique"):
        Scheduler(None, None, [relay, relay])  # type: ignore[arg-type]


def test_each_periodic_job_is_queued_once_per_slot_even_when_asked_again_or_restarted(hub, clock):
    clock.set(datetime(2026, 3, 1, 3, 0, 0, tzinfo=UTC))  # within the nightly reconcile's start window
    first = Scheduler(embedded_queue(hub), clock)
    queued = first.tick()
    assert {q.split(":")[1] for q in queued} == NAMES
    assert first.tick() == []
    assert Scheduler(embedded_queue(hub), clock).tick() == []  # a restarted scheduler remembers nothing…
    assert len(job_ids(hub)) == len(SCHEDULE)  # …and queues nothing twice

    clock.set(clock.now() + timedelta(seconds=5))
    assert [q.split(":")[1] for q in first.tick()] == ["relay_outbox"]
    clock.set(clock.now() + timedelta(minutes=1))
    assert sorted(q.split(":")[1] for q in first.tick()) == [
        "poll_connections",
        "relay_outbox",
        "repair_sync_states",
        "repair_webhook_receipts",
    ]


def test_a_finished_slot_is_not_run_again(hub, clock):
    clock.set(datetime(2026, 3, 1, 3, 0, 0, tzinfo=UTC))
    queue = embedded_queue(hub)
    Scheduler(queue, clock).tick()
    while (job := queue.take()) is not None:
        queue.finish(job)
    assert Scheduler(queue, clock).tick() == []


def _tick_together(schedulers: list[Scheduler]) -> list[str]:
    barrier = threading.Barrier(len(schedulers))
    results: list[list[str]] = [[] for _ in schedulers]
    errors: list[BaseException] = []

    def tick(index: int) -> None:
        try:
            barrier.wait(5)
            results[index] = schedulers[index].tick()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=tick, args=(i,)) for i in range(len(schedulers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors, errors
    return [job_id for result in results for job_id in result]


def test_two_schedulers_at_once_queue_each_slot_once_on_the_database(hub, clock):
    clock.set(datetime(2026, 3, 1, 3, 0, 0, tzinfo=UTC))
    schedulers = [Scheduler(embedded_queue(hub), clock) for _ in range(2)]
    queued = []
    for _ in range(3):
        queued += _tick_together(schedulers)
        clock.set(clock.now() + timedelta(minutes=1))
    # relay, repair sync states, poll, repair webhook receipts each minute; billing and reconcile once
    assert len(queued) == len(set(queued)) == 3 * 4 + 2
    assert sorted(queued) == job_ids(hub)


def test_two_schedulers_at_once_queue_each_slot_once_on_rq(redis_queue):
    clock = FixedClock(datetime(2026, 3, 1, 3, 0, 0, tzinfo=UTC))
    other = RedisQueue(redis.Redis.from_url(REDIS_URL), prefix=redis_queue.prefix)
    schedulers = [Scheduler(redis_queue, clock), Scheduler(other, clock)]
    queued = []
    for _ in range(3):
        queued += _tick_together(schedulers)
        clock.set(clock.now() + timedelta(minutes=1))
    assert len(queued) == len(set(queued)) == 14  # 4 jobs each minute; billing, reconcile once
    assert redis_queue.pending() == 14
    assert {redis_queue.fetch(job_id).origin for job_id in queued if "billing" in job_id} == {  # type: ignore[union-attr]
        f"{redis_queue.prefix}-default"  # no routes given: everything on default
    }
    restarted = Scheduler(RedisQueue(redis_queue.connection, prefix=redis_queue.prefix), clock)
    clock.set(clock.now() - timedelta(minutes=1))
    assert restarted.tick() == []


def test_finished_rows_are_purged_only_once_their_slot_cannot_recur(hub, clock):
    clock.set(datetime(2026, 3, 1, 3, 0, 0, tzinfo=UTC))
    queue = embedded_queue(hub)
    Scheduler(queue, clock).tick()
    queue.enqueue("push_record", {}, "push:con_1:customer:cus_1")
    while (job := queue.take()) is not None:
        queue.finish(job)
    clock.set(clock.now() + timedelta(minutes=4))
    purge_finished(queue)
    assert {job_id.split(":")[1] for job_id in job_ids(hub)} == {
        "run_billing",
        "reconcile_connections",
        "con_1",
    }
    queued = Scheduler(queue, clock).tick()  # the hourly and nightly slots still current are remembered
    assert sorted(q.split(":")[1] for q in queued) == [
        "poll_connections",
        "relay_outbox",
        "repair_sync_states",
        "repair_webhook_receipts",
    ]
    while (job := queue.take()) is not None:
        queue.finish(job)
    clock.set(clock.now() + timedelta(days=3))
    purge_finished(queue)
    assert job_ids(hub) == []


def test_make_scheduler_gives_each_backend_its_maintenance(hub, database, redis_queue):
    embedded = make_scheduler(hub)
    assert isinstance(embedded.maintenance, Every)
    from tests.conftest import make_hub

    with_redis = make_hub(database, redis_url=REDIS_URL, redis_prefix=redis_queue.prefix)
    try:
        scheduler = make_scheduler(with_redis)
        assert scheduler.maintenance is not None and scheduler.on_stop is not None
        queue = scheduler.queue
        assert isinstance(queue, RedisQueue) and queue.routes == {
            "run_billing": "long",
            "reconcile_connections": "long",
        }
        scheduler.tick()
        billing = queue.fetch(
            next(p for p in SCHEDULE if p.name == "run_billing").job_id(with_redis.clock.now())
        )
        assert billing is not None and billing.origin == f"{redis_queue.prefix}-long"
        scheduler.on_stop()
    finally:
        with_redis.close()


def test_the_scheduler_command_queues_what_is_due_once(hub):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ABOHUB_")}
    environment.update(ABOHUB_DATABASE_URL=hub.settings.database_url, ABOHUB_TESTING="true")

    def run() -> list[str]:
        result = subprocess.run(
            [sys.executable, "-m", "hub.cli", "scheduler", "--once"],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    due = {p.name for p in SCHEDULE if not p.too_late(datetime.now(UTC))}  # the reconcile only until 08:00
    first = run()
    assert {line.split(":")[1] for line in first if line.startswith("periodic:")} == due
    second = [line for line in run() if line.startswith("periodic:")]
    # A second run queues only slots that began between the two runs, never one already queued.
    assert not set(second) & set(first)
