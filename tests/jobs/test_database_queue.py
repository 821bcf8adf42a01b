"""The embedded queue: durable rows, deterministic ids, leases that survive a dead worker."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.queue import DatabaseQueue


@pytest.fixture
def queue(hub, clock):  # type: ignore[no-untyped-def]
    return DatabaseQueue(hub.session_factory, clock, lease=timedelta(minutes=5))


def test_the_same_id_is_queued_once(queue):
    assert queue.enqueue("push", {"id": "cus_1"}, "push:cus_1") is True
    assert queue.enqueue("push", {"id": "cus_1"}, "push:cus_1") is False
    job = queue.take()
    assert job is not None and job.id == "push:cus_1" and job.attempts == 1
    assert queue.take() is None


def test_a_finished_job_can_be_queued_again(queue):
    queue.enqueue("push", {}, "j")
    queue.finish(queue.take())
    assert queue.enqueue("push", {}, "j") is True
    assert queue.take().id == "j"


def test_a_job_is_not_taken_before_its_time(queue, clock):
    queue.enqueue("push", {}, "later", run_at=clock.now() + timedelta(seconds=30))
    assert queue.take() is None
    clock.set(clock.now() + timedelta(seconds=31))
    assert queue.take().id == "later"


def test_a_worker_that_dies_loses_nothing(queue, clock):
    queue.enqueue("push", {}, "j")
    first = queue.take()
    assert first is not None
    # The worker holding it is killed: nobody finishes it. Before the lease ends nobody else runs it…
    clock.set(clock.now() + timedelta(minutes=4))
    assert queue.take() is None
    # …after it, the next worker does.
    clock.set(clock.now() + timedelta(minutes=2))
    again = queue.take()
    assert again is not None and again.id == "j" and again.attempts == 2


def test_work_arriving_while_a_job_runs_makes_it_run_once_more(queue):
    queue.enqueue("push", {}, "j")
    job = queue.take()
    assert queue.enqueue("push", {}, "j") is False
    queue.finish(job)
    rerun = queue.take()
    assert rerun is not None and rerun.id == "j"
    queue.finish(rerun)
    assert queue.take() is None


def test_retry_later_and_fail_for_good(queue, clock):
    queue.enqueue("push", {}, "j")
    job = queue.take()
    queue.retry(job, "HubSpot answered 503", clock.now() + timedelta(seconds=10))
    assert queue.take() is None
    clock.set(clock.now() + timedelta(seconds=10))
    job = queue.take()
    assert job.attempts == 2
    queue.retry(job, "gave up", None)
    assert queue.take() is None
    assert queue.pending() == 0
