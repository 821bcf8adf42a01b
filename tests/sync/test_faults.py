"""The sync engine under faults: nothing lost, nothing doubled.

* a storm of 5xx, client timeouts (some applied late by HubSpot) and 429s with Retry-After while
  1,000 changes go out: every contact ends with exactly the hub's values, once;
* a worker SIGKILLed mid-push (embedded and rq): the next worker finishes the work within the
  documented bound, with no duplicate contact;
* a private Redis killed and restarted mid-run (its queue lost): repair gets all work done;
* a record HubSpot always refuses lands in dead letters while the others go through, and replays;
* a write HubSpot holds past the client's timeout does not land over the record's next write.

The hub's clock is fixed where one process drives everything (time moves on by hand past the
backoffs); tests with worker processes use the system clock, short leases and retry delays.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from rq import SimpleWorker
from sqlalchemy import select

from connectors.hubspot.sim.faults import Fault
from connectors.hubspot.simulator import HubSpotSimulator
from hub.bootstrap import Hub
from hub.services import customers
from hub.services.clock import SystemClock
from hub.services.crypto import generate_key
from hub.services.dead_letters import replay_dead_letter
from hub.store.models import JobRun, Link
from jobs.periodic import relay_outbox
from jobs.rq_backend import RedisQueue
from jobs.rq_worker import install_hub
from jobs.runtime import embedded_queue
from jobs.schedule import Periodic, Scheduler
from jobs.worker import EmbeddedWorker
from tests.conftest import make_hub, wipe
from tests.sync import support

REDIS_URL = os.environ.get("ABOHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
UPSERT, UPDATE = r"/batch/upsert$", r"/batch/update$"
LEASE = 2  # seconds (production: 60)
SLACK = 8  # seconds for starting a worker process and pushing, on a busy 2-core machine
KILL_CUSTOMERS = 150
CUSTOMERS = 250  # 250 creations + 3 × 250 edits = 1,000 changes
PUSHES = 3  # per customer: created, then two edits coalesced, then one more edit


@pytest.fixture(autouse=True)
def _quick_http(monkeypatch: pytest.MonkeyPatch) -> None:
    support.quick_http(monkeypatch)


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests where HubSpot holds requests past the client's patience."""
    support.quick_http(monkeypatch, timeout=support.CLIENT_TIMEOUT)


@pytest.fixture
def sim() -> Iterator[HubSpotSimulator]:
    with support.simulator() as simulator:
        yield simulator


@pytest.fixture
def make(database: str) -> Iterator[Callable[..., Hub]]:
    """Hubs on a clean database, closed after the test.

    ``live=True``: on the system clock, as worker processes are, with short leases and retries.
    Otherwise on a fixed clock that the test moves past backoffs and the repair delay.
    """
    made: list[Hub] = []

    def build(*, live: bool = False, **settings: object) -> Hub:
        if live:
            settings = {
                "job_lease_seconds": LEASE,
                "job_retry_base_seconds": 1,
                "job_max_attempts": 3,
                **settings,
            }
        instance = make_hub(
            database, encryption_keys=(generate_key(),), sync_repair_delay_seconds=1, **settings
        )
        if live:
            instance.clock = SystemClock()
        made.append(instance)
        wipe(instance)
        return instance

    yield build
    for instance in made:
        instance.close()


@pytest.fixture
def hub(make: Callable[..., Hub]) -> Hub:
    return make()


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys are removed afterwards."""
    value = f"abohubtest-{uuid.uuid4().hex[:10]}"
    yield value
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"*{value}*"))
    if keys:
        client.delete(*keys)
    for registry in ("rq:queues", "rq:workers"):
        stale = [m for m in client.smembers(registry) if value.encode() in m]  # type: ignore[union-attr]
        if stale:
            client.srem(registry, *stale)
    client.close()


def _run_storm(hub: Hub, sim: HubSpotSimulator, run_jobs: Callable[[], object]) -> None:
    """1,000 changes in three pushes per customer, each push meeting its own faults."""
    connection_id = support.hubspot_connection(hub, sim)
    late = support.CLIENT_TIMEOUT + 0.5  # HubSpot answers after the client has given up

    # 250 customers created; their contacts are upserted on abohub_id in batches of 100. (A fault
    # fires on the `skip + 1`-th request that reaches it: earlier faults that fire stop the search.)
    sim.faults.add("http_503", 1, path=UPSERT)
    sim.faults.add("timeout", 1, path=UPSERT, seconds=late, apply=True, skip=1)  # applied, answer lost
    sim.faults.add("rate_limit_storm", 1, path=UPSERT, skip=2)  # 429 with Retry-After: 1
    ids = support.create_customers(hub, CUSTOMERS)
    changes = len(ids)
    support.settle(hub, run_jobs)
    assert not sim.faults.active, "every fault of the phase fired"

    # Each customer edited twice before the push (the edits coalesce into one write).
    sim.faults.add("http_502", 1, path=UPDATE)
    sim.faults.add("http_500", 1, path=UPDATE, skip=1)
    sim.faults.add("timeout", 1, path=UPDATE, seconds=late, apply=False, skip=2)  # not applied
    sim.faults.add("rate_limit_storm", 1, path=UPDATE, skip=2)
    changes += support.edit_customers(hub, ids, 1) + support.edit_customers(hub, ids, 2)
    support.settle(hub, run_jobs)
    assert not sim.faults.active, "every fault of the phase fired"

    # Edited once more, during an outage longer than the client's patience: the records wait on
    # their sync state (backoff), then go out; one batch is applied after its answer was lost.
    sim.faults.add("http_503", 5, path=UPDATE)
    sim.faults.add("timeout", 1, path=UPDATE, seconds=late, apply=True, skip=1)
    changes += support.edit_customers(hub, ids, 3)
    assert support.settle(hub, run_jobs) > 1, "the outage outlasted the client's retries"
    assert not sim.faults.active, "every fault of the phase fired"
    assert changes == 1000

    support.assert_remote_holds_the_hub(hub, sim, connection_id, ids)
    assert support.open_dead_letters(hub) == []
    twice = support.assert_each_change_written_once_in_effect(hub, sim, connection_id, PUSHES)
    # Written twice: only records of the two batches (of at most 100) whose answers were lost.
    assert 0 < sum(count * records for count, records in twice.items()) <= 2 * 100


def test_a_storm_of_faults_on_the_embedded_queue_loses_and_doubles_nothing(hub, sim, short_timeouts):
    _run_storm(hub, sim, _embedded_runner(hub))


@pytest.mark.postgres_only
def test_a_storm_of_faults_on_rq_loses_and_doubles_nothing(make, sim, prefix, short_timeouts):
    hub = make(redis_url=REDIS_URL, redis_prefix=prefix)
    install_hub(hub)  # the in-process rq worker runs the jobs with this hub (and its fixed clock)
    queue = RedisQueue.from_settings(hub.settings)
    try:
        _run_storm(
            hub, sim, lambda: SimpleWorker(queue.rq_queues(), connection=queue.connection).work(burst=True)
        )
    finally:
        install_hub(None)


# -- a worker SIGKILLed mid-push ----------------------------------------------------------------


def _push_in_flight_when_killed(  # type: ignore[no-untyped-def]
    hub: Hub, sim: HubSpotSimulator, start_worker, log: Path
) -> tuple[str, list[str], Fault]:
    """Customers are created and relayed; a worker pushes them; it is SIGKILLed while HubSpot holds
    its second batch (which HubSpot then applies: the worker never learns)."""
    connection_id = support.hubspot_connection(hub, sim)
    ids = support.create_customers(hub, KILL_CUSTOMERS)
    slow = sim.faults.add("timeout", 1, path=UPSERT, seconds=2, apply=True, skip=1)
    relay_outbox(hub)
    first = start_worker()
    try:
        support.until(lambda: slow.fired == 1, 30, "the second batch is in flight", log)
    finally:
        support.kill(first)
    assert support.dirty(hub) == len(ids) - 100  # the first batch written and recorded; the second in flight
    return connection_id, ids, slow


def _nothing_lost_or_doubled(
    hub: Hub, sim: HubSpotSimulator, connection_id: str, ids: list[str], held: Fault, versions: int = 1
) -> None:
    support.until(lambda: support.late_writes_landed(sim, held), 10, "HubSpot applied the held batch")
    support.assert_remote_holds_the_hub(hub, sim, connection_id, ids)
    assert support.open_dead_letters(hub) == []
    support.assert_each_change_written_once_in_effect(hub, sim, connection_id, versions)


def test_an_embedded_worker_killed_mid_push_is_replaced_within_the_lease(make, sim, tmp_path):
    hub = make(live=True)
    log = tmp_path / "worker.log"
    workers: list[subprocess.Popen[bytes]] = []

    def start_worker() -> subprocess.Popen[bytes]:
        workers.append(support.spawn(hub, support.EMBEDDED_WORKER, log))
        return workers[-1]

    try:
        connection_id, ids, slow = _push_in_flight_when_killed(hub, sim, start_worker, log)
        start_worker()
        # Documented bound: the next worker takes the job once the lease runs out (+ an idle poll).
        waited = support.until(
            lambda: support.dirty(hub) == 0 and _push_run(hub).status == "done",
            LEASE + 1 + SLACK,
            "work done after the kill",
            log,
        )
        print(f"embedded: lease {LEASE} s, work done {waited:.2f} s after the SIGKILL")
        assert waited >= LEASE - 1  # not before the lease could have run out
    finally:
        for worker in workers:
            support.kill_group(worker)
    _nothing_lost_or_doubled(hub, sim, connection_id, ids, slow)
    assert _push_run(hub).attempts == 2


def _push_run(hub: Hub) -> JobRun:
    with hub.session_factory() as session:
        return session.scalars(select(JobRun).where(JobRun.function == "push_changes")).one()


@pytest.mark.postgres_only
def test_an_rq_worker_killed_mid_push_is_recovered_by_the_scheduler(make, sim, prefix, tmp_path):
    hub = make(live=True, redis_url=REDIS_URL, redis_prefix=prefix)
    queue = RedisQueue.from_settings(hub.settings)
    scheduler = Scheduler(queue, hub.clock, schedule=(), maintenance=queue.maintain, tick_seconds=0.2)
    log = tmp_path / "worker.log"
    workers: list[subprocess.Popen[bytes]] = []

    def start_worker() -> subprocess.Popen[bytes]:
        workers.append(support.spawn(hub, support.RQ_WORKER, log))
        return workers[-1]

    scheduler.start()  # the one `abohub scheduler`: recovers the jobs of dead workers
    try:
        connection_id, ids, slow = _push_in_flight_when_killed(hub, sim, start_worker, log)
        start_worker()
        # Documented bound: the lease, a scheduler tick, then the first retry interval (1 s here).
        waited = support.until(
            lambda: support.dirty(hub) == 0 and queue.pending() == 0,
            LEASE + 0.2 + 1 + SLACK,
            "work done after the kill",
            log,
        )
        print(f"rq: lease {LEASE} s, work done {waited:.2f} s after the SIGKILL")
    finally:
        scheduler.stop(timeout=5)
        for worker in workers:
            support.kill_group(worker)
    _nothing_lost_or_doubled(hub, sim, connection_id, ids, slow)


# -- Redis restarted mid-run ------------------------------------------------------------------


@pytest.mark.postgres_only
def test_redis_restarted_mid_run_loses_its_queue_and_repair_gets_all_work_done(make, sim, tmp_path):
    with support.private_redis(tmp_path) as server:
        hub = make(live=True, redis_url=server.url, redis_prefix="abohub-restart")
        queue = RedisQueue.from_settings(hub.settings)
        often = timedelta(seconds=2)  # production: every 5 s and every minute
        fast = (
            Periodic("relay_outbox", "relay_outbox", often),
            Periodic("repair_sync_states", "repair_sync_states", often),
        )
        scheduler = Scheduler(queue, hub.clock, fast, maintenance=queue.maintain, tick_seconds=0.2)
        log = tmp_path / "worker.log"
        workers: list[subprocess.Popen[bytes]] = []
        try:
            connection_id = support.hubspot_connection(hub, sim)
            slow = sim.faults.add("timeout", 1, path=UPSERT, seconds=2, apply=True, skip=1)
            # Two `abohub worker`s: one pushes while the other runs the periodic relay.
            workers += [support.spawn(hub, support.RQ_WORKER, log) for _ in range(2)]
            scheduler.start()
            ids = support.create_customers(hub, KILL_CUSTOMERS)
            support.until(lambda: slow.fired == 1, 30, "the first push is in flight", log)
            support.edit_customers(hub, ids, 0)  # more changes while it runs…
            support.until(lambda: support.unrelayed(hub) == 0, 10, "the changes are relayed", log)
            server.kill()  # …and Redis goes, with every job and marker it held
            support.until(lambda: all(w.poll() is not None for w in workers), 10, "rq workers quit", log)
            support.edit_customers(hub, ids, 1)  # changes while Redis is down…
            with pytest.raises(redis.ConnectionError):
                relay_outbox(hub)  # …are relayed (marked dirty in the database), then cannot be queued
            assert support.unrelayed(hub) == 0 and support.dirty(hub) == len(ids)
            server.start()  # empty, on the same port; a supervisor would restart the workers
            workers.append(support.spawn(hub, support.RQ_WORKER, log))
            # Nothing is left to relay and no job survived: only the periodic repair can finish it.
            waited = support.until(
                lambda: support.work_left(hub) == 0, 30, "all work done after the restart", log
            )
            print(f"Redis restart: all work done {waited:.2f} s after Redis came back")
        finally:
            scheduler.stop(timeout=5)
            for worker in workers:
                support.kill_group(worker)
        _nothing_lost_or_doubled(hub, sim, connection_id, ids, slow, versions=3)  # created, edited twice


# -- a record that always fails ---------------------------------------------------------------


def _embedded_runner(hub: Hub) -> Callable[[], None]:
    worker = EmbeddedWorker(hub, embedded_queue(hub))

    def run_jobs() -> None:
        while worker.step():
            pass

    return run_jobs


def test_a_record_hubspot_always_refuses_is_dead_lettered_and_replays_once_the_cause_is_gone(hub, sim):
    """Through the queue and worker, beside a 5xx: the others go through in the same pushes.

    (tests/sync/test_two_way_hubspot.py covers a record fixed in the hub and the API's replay;
    here the cause is on HubSpot's side, so only a replay sends the record again.)
    """
    connection_id = support.hubspot_connection(hub, sim)
    run_jobs = _embedded_runner(hub)
    taken = sim.create("contacts", {"email": "bo@example.dk", "firstname": "Someone"}, webhooks=False)
    ids = support.create_customers(hub, 20)
    bo = customers.create_customer(customers.CreateCustomer(name="Bo Dal", email="bo@example.dk"), hub.uow())
    sim.faults.add("http_503", 2, path=UPSERT)
    support.settle(hub, run_jobs)

    [letter] = support.open_dead_letters(hub)
    assert letter.local_id == bo.id and letter.operation == "push"
    assert "409" in letter.reason and "already exists" in letter.reason  # says what HubSpot objected to
    assert letter.request and "batch/upsert" in letter.request["url"]
    assert sim.token not in json.dumps(letter.request) + letter.reason  # scrubbed
    assert sorted(support.remote_ids(hub, connection_id)) == sorted(ids)  # the others went through

    sim.delete("contacts", taken)  # a person removes the contact that held the email
    replay_dead_letter(letter.id, hub, "user:ops")
    support.settle(hub, run_jobs)

    assert support.open_dead_letters(hub) == []
    support.assert_remote_holds_the_hub(hub, sim, connection_id, [*ids, bo.id])
    writes = support.writes_per_record(hub, sim, connection_id)
    assert set(writes.values()) == {1}  # the replay delivered Bo once and rewrote nobody


def test_an_outage_in_a_later_batch_does_not_rewrite_the_batches_already_written(hub, sim):
    connection_id = support.hubspot_connection(hub, sim)
    ids = support.create_customers(hub, 150)
    sim.faults.add("http_503", 5, path=UPSERT, skip=1)  # the second batch of 100 meets the outage
    support.settle(hub, _embedded_runner(hub))
    support.assert_remote_holds_the_hub(hub, sim, connection_id, ids)
    writes = support.writes_per_record(hub, sim, connection_id)
    assert set(writes.values()) == {1}


def test_a_malformed_answer_is_retried_not_dead_lettered(hub, sim):
    connection_id = support.hubspot_connection(hub, sim)
    ids = support.create_customers(hub, 20)
    sim.faults.add("malformed", 1, path=UPSERT, apply=True)
    support.settle(hub, _embedded_runner(hub))
    assert support.open_dead_letters(hub) == []
    support.assert_remote_holds_the_hub(hub, sim, connection_id, ids)


def test_a_write_held_past_the_client_timeout_never_lands_over_a_newer_one(hub, sim, short_timeouts):
    """HubSpot holds a write past the client's patience; the client sends it again, the retry lands. The
    held request may still land later, so the record's next change waits ``ABOHUB_SYNC_LATE_WRITE_SECONDS``
    instead of going out at once and being overwritten by it."""
    connection_id = support.hubspot_connection(hub, sim)
    run_jobs = _embedded_runner(hub)
    ids = support.create_customers(hub, 1)
    support.settle(hub, run_jobs)
    held = sim.faults.add("timeout", 1, path=UPDATE, seconds=support.CLIENT_TIMEOUT + 3, apply=True)
    support.edit_customers(hub, ids, 1)
    support.settle(hub, run_jobs)  # the client gave up on the held request and sent it again
    first = sim.get("contacts", support.remote_ids(hub, connection_id)[ids[0]])["properties"]
    support.edit_customers(hub, ids, 2)
    relay_outbox(hub)
    run_jobs()
    assert sim.get("contacts", support.remote_ids(hub, connection_id)[ids[0]])["properties"] == first  # waits

    support.until(lambda: support.late_writes_landed(sim, held), 10, "HubSpot applied the held request")
    support.settle(hub, run_jobs)  # the wait is over (the hub's clock moves on): the newer change goes out
    support.assert_remote_holds_the_hub(hub, sim, connection_id, ids)


def test_a_new_record_whose_create_went_unanswered_waits_before_its_next_write(hub, sim, short_timeouts):
    connection_id = support.hubspot_connection(hub, sim)
    run_jobs = _embedded_runner(hub)
    sim.faults.add("timeout", 1, path=UPSERT, seconds=support.CLIENT_TIMEOUT + 0.5, apply=True)
    ids = support.create_customers(hub, 1)
    support.settle(hub, run_jobs)  # created by the retry; the held upsert landed half a second later
    with hub.session_factory() as session:
        link = session.scalar(select(Link).where(Link.local_id == ids[0]))
        assert link is not None and link.late_write_until is not None
        assert hub.clock.now() < link.late_write_until <= hub.clock.now() + timedelta(seconds=120)
    created = sim.get("contacts", link.remote_id)["properties"]

    support.edit_customers(hub, ids, 1)
    relay_outbox(hub)
    run_jobs()
    assert sim.get("contacts", link.remote_id)["properties"] == created  # not yet: it waits
    support.settle(hub, run_jobs)
    support.assert_remote_holds_the_hub(hub, sim, connection_id, ids)
