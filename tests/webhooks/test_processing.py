"""What a delivery does to the connection's processing job, whatever state that job is in: waiting,
running, waiting for a retry, finished (most deliveries find it waiting and change nothing); and how
concurrent deliveries share one insert and one enqueue."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from hub.services.connections import CreateConnection, UpdateConnection, create_connection, update_connection
from hub.store.models import JobRun, WebhookReceipt
from hub.webhooks import EXTENSION, PROCESSING
from hub.webhooks.processing import EnqueueFailed, ProcessingQueue
from jobs.queue import DatabaseQueue
from tests.webhooks.conftest import ACCESS_TOKEN, CLIENT_SECRET
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


def test_concurrent_deliveries_share_the_next_insert_and_enqueue_never_ones_already_running(
    hub, app, path, connection
):
    held = HeldQueue()
    app.extensions[PROCESSING] = ProcessingQueue(lambda: held)
    receiver = app.extensions[EXTENSION]
    inserts: list[int] = []

    def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT INTO webhook_receipts"):
            inserts.append(statement.count("(%(") or statement.count("(?"))

    answers: dict[int, dict] = {}

    def deliver(n: int) -> None:
        answers[n] = post(app.test_client(), path, events(n)).get_json()

    event.listen(hub.engine, "before_cursor_execute", seen)
    try:
        first = threading.Thread(target=deliver, args=(1,))
        first.start()
        assert held.started.acquire(timeout=10)  # stored; its enqueue runs (it may not see later commits)…
        later = [threading.Thread(target=deliver, args=(n,)) for n in (2, 3, 4)]
        for thread in later:
            thread.start()
        wait_for(lambda: receiver.waiting() == 3)  # …so the deliveries after it wait for the next group
        held.release.release()
        assert held.started.acquire(timeout=10)
        held.release.release()
        for thread in [first, *later]:
            thread.join(10)
    finally:
        event.remove(hub.engine, "before_cursor_execute", seen)
    assert len(inserts) == 2  # two statements for four deliveries: the second carried three rows
    assert held.enqueues == [f"webhooks:{connection.id}"] * 2  # and two enqueues
    assert answers == {n: {"received": 1, "stored": 1, "duplicates": 0} for n in (1, 2, 3, 4)}
    with hub.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(WebhookReceipt)) == 4


def test_an_event_two_concurrent_deliveries_carry_is_stored_once_and_counted_once(hub, app, path):
    held = HeldQueue()
    app.extensions[PROCESSING] = ProcessingQueue(lambda: held)
    receiver = app.extensions[EXTENSION]
    answers: dict[str, dict] = {}

    def deliver(name: str, body: bytes) -> None:
        answers[name] = post(app.test_client(), path, body).get_json()

    threads = [threading.Thread(target=deliver, args=("first", events(1)))]
    threads[0].start()
    assert held.started.acquire(timeout=10)
    threads += [
        threading.Thread(target=deliver, args=("a", events(5, 6))),
        threading.Thread(target=deliver, args=("b", events(6, 7))),
    ]
    for thread in threads[1:]:
        thread.start()
    wait_for(lambda: receiver.waiting() == 2)  # both in one group: event 6 is in both
    held.release.release()
    assert held.started.acquire(timeout=10)
    held.release.release()
    for thread in threads:
        thread.join(10)
    assert sorted((answers["a"]["stored"], answers["b"]["stored"])) == [1, 2]
    assert answers["a"]["stored"] + answers["a"]["duplicates"] == 2
    assert answers["b"]["stored"] + answers["b"]["duplicates"] == 2
    with hub.session_factory() as session:
        stored = session.scalars(select(WebhookReceipt.event_id).order_by(WebhookReceipt.event_id)).all()
    assert stored == ["1", "5", "6", "7"]


def test_a_failed_enqueue_is_told_with_its_cause():
    class Down:
        def enqueue(self, *args: object, **kwargs: object) -> bool:
            raise ConnectionError("redis is restarting")

    processing = ProcessingQueue(Down)
    with pytest.raises(EnqueueFailed) as failure:
        processing.request("con_1")
    assert isinstance(failure.value.__cause__, ConnectionError)


def test_a_connection_disabled_while_its_delivery_waits_in_a_group_is_refused_and_the_others_stored(
    hub, app, path, connection
):
    other = create_connection(
        CreateConnection(
            "hubspot", "HubSpot EU", {"access_token": ACCESS_TOKEN, "client_secret": CLIENT_SECRET}
        ),
        hub.uow("tests"),
    )
    other_path = f"/webhooks/{other.id}"
    assert post(app.test_client(), other_path, events(90)).status_code == 200  # its connector is cached
    held = HeldQueue()
    app.extensions[PROCESSING] = ProcessingQueue(lambda: held)
    receiver = app.extensions[EXTENSION]
    answers: dict[str, int] = {}

    def deliver(name: str, where: str, body: bytes) -> None:
        answers[name] = post(app.test_client(), where, body).status_code

    threads = [threading.Thread(target=deliver, args=("first", path, events(1)))]
    threads[0].start()
    assert held.started.acquire(timeout=10)
    update_connection(UpdateConnection(other.id, enabled=False), hub.uow("tests"))
    threads += [
        threading.Thread(target=deliver, args=("kept", path, events(2))),
        threading.Thread(target=deliver, args=("disabled", other_path, events(91))),
    ]
    for thread in threads[1:]:
        thread.start()
    wait_for(lambda: receiver.waiting() == 2)
    held.release.release()
    assert held.started.acquire(timeout=10)
    held.release.release()
    for thread in threads:
        thread.join(10)
    assert answers == {"first": 200, "kept": 200, "disabled": 404}
    with hub.session_factory() as session:
        stored = session.scalars(select(WebhookReceipt.event_id).order_by(WebhookReceipt.event_id)).all()
    assert stored == ["1", "2", "90"]
