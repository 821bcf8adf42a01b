"""What a delivery does to the connection's processing job, whatever state that job is in: waiting,
running, waiting for a retry, finished (most deliveries find it waiting and change nothing); and how
concurrent deliveries share one enqueue."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from hub.store.models import JobRun
from hub.webhooks import PROCESSING
from hub.webhooks.processing import EnqueueFailed, ProcessingQueue
from jobs.queue import DatabaseQueue
from tests.webhooks.test_receiver import events, post


def queue_of(app) -> DatabaseQueue:  # type: ignore[no-untyped-def]
    queue = app.extensions[PROCESSING].queue
    assert isinstance(queue, DatabaseQueue)
    return queue


def job_row(hub, connection) -> JobRun | None:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.get(JobRun, f"webhooks:{connection.id}")


def test_deliveries_while_the_job_waits_leave_one_job_and_it_runs_once(hub, app, client, path, connection):
    queue = queue_of(app)
    for n in range(3):
        assert post(client, path, events(n)).status_code == 200
    job = queue.take()
    assert job is not None and job.args == {"connection_id": connection.id}
    assert queue.take() is None


def test_a_delivery_while_the_job_runs_makes_it_run_once_more(hub, app, client, path, connection):
    queue = queue_of(app)
    assert post(client, path, events(1)).status_code == 200
    running = queue.take()
    assert running is not None
    assert post(client, path, events(2)).status_code == 200  # the run may have read the receipts already
    queue.finish(running)
    again = queue.take()
    assert again is not None and again.id == running.id and again.args == {"connection_id": connection.id}
    queue.finish(again)
    assert queue.take() is None

    assert post(client, path, events(3)).status_code == 200  # finished: a new delivery queues it again
    assert queue.take() is not None


def test_a_delivery_brings_a_job_waiting_for_its_retry_forward(hub, app, client, path, connection, clock):
    queue = queue_of(app)
    assert post(client, path, events(1)).status_code == 200
    job = queue.take()
    queue.retry(job, "HubSpot answered 503", clock.now() + timedelta(minutes=5))
    assert queue.take() is None

    assert post(client, path, events(2)).status_code == 200
    row = job_row(hub, connection)
    assert row is not None and row.status == "queued" and row.run_at == clock.now()
    assert queue.take() is not None


class HeldQueue:
    """A queue whose enqueues wait until the test lets them go; it records each one."""

    def __init__(self) -> None:
        self.enqueues: list[str] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)

    def enqueue(self, function: str, args: dict, job_id: str, run_at: object = None) -> bool:
        self.enqueues.append(job_id)
        self.started.release()
        assert self.release.acquire(timeout=10)
        return len(self.enqueues) == 1  # the first one queues the job, later ones find it waiting


def wait_for(condition) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_concurrent_deliveries_share_the_next_enqueue_never_one_already_running():
    held = HeldQueue()
    processing = ProcessingQueue(lambda: held)
    answers: dict[str, bool] = {}

    def deliver(name: str) -> None:
        answers[name] = processing.request("con_1")

    first = threading.Thread(target=deliver, args=("first",))
    first.start()
    assert held.started.acquire(timeout=10)  # the first enqueue runs (it may not see later commits)…
    later = [threading.Thread(target=deliver, args=(f"later {n}",)) for n in range(3)]
    for thread in later:
        thread.start()
    wait_for(lambda: processing.waiting("con_1") == 3)  # …so the deliveries after it wait for the next
    held.release.release()
    assert held.started.acquire(timeout=10)
    held.release.release()
    for thread in [first, *later]:
        thread.join(10)
    assert held.enqueues == ["webhooks:con_1", "webhooks:con_1"]  # two enqueues for four deliveries
    assert answers == {"first": True, "later 0": False, "later 1": False, "later 2": False}


def test_every_delivery_sharing_a_failed_enqueue_is_told():
    class Down:
        def enqueue(self, *args: object, **kwargs: object) -> bool:
            raise ConnectionError("redis is restarting")

    processing = ProcessingQueue(Down)
    with pytest.raises(EnqueueFailed) as failure:
        processing.request("con_1")
    assert isinstance(failure.value.__cause__, ConnectionError)
    assert processing.waiting("con_1") == 0
