"""The safety net: receipts whose processing job was never queued (or was lost) get one from the
periodic ``repair_webhook_receipts`` once they have waited a minute."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from hub.services.connections import UpdateConnection, update_connection
from hub.store.models import JobRun, WebhookReceipt
from hub.webhooks import PROCESSING
from hub.webhooks.processing import ProcessingQueue
from jobs.sync_jobs import repair_webhook_receipts
from tests.webhooks.test_receiver import events, post


class QueueDown:
    def enqueue(self, *args: object, **kwargs: object) -> bool:
        raise ConnectionError("redis is restarting")


def jobs(hub) -> list[tuple[str, str, str, dict]]:  # type: ignore[no-untyped-def]
    query = select(JobRun.id, JobRun.function, JobRun.status, JobRun.args)
    with hub.session_factory() as session:
        return [tuple(row) for row in session.execute(query)]


def store_without_a_job(app, client, path) -> None:  # type: ignore[no-untyped-def]
    """A delivery stored, but its job not queued (answered 503; the vendor never retries)."""
    working = app.extensions[PROCESSING]
    app.extensions[PROCESSING] = ProcessingQueue(QueueDown)
    assert post(client, path, events(1, 2)).status_code == 503
    app.extensions[PROCESSING] = working


def test_receipts_left_without_a_job_get_one_once_they_waited_a_minute(
    hub, app, client, path, connection, clock
):
    store_without_a_job(app, client, path)

    clock.set(clock.now() + timedelta(seconds=30))
    assert repair_webhook_receipts(hub) == {"connections": 0, "queued": 0}  # too fresh: the edge may be on it
    assert jobs(hub) == []

    clock.set(clock.now() + timedelta(seconds=31))
    assert repair_webhook_receipts(hub) == {"connections": 1, "queued": 1}
    expected = (f"webhooks:{connection.id}", "process_webhooks", "queued", {"connection_id": connection.id})
    assert jobs(hub) == [expected]

    # Asked again while that job waits: still one job.
    assert repair_webhook_receipts(hub) == {"connections": 1, "queued": 0}
    assert jobs(hub) == [expected]


def test_processed_receipts_and_disabled_connections_are_left_alone(
    hub, app, client, path, connection, clock
):
    store_without_a_job(app, client, path)
    clock.set(clock.now() + timedelta(minutes=5))
    update_connection(UpdateConnection(connection.id, enabled=False), hub.uow("tests"))
    assert repair_webhook_receipts(hub) == {"connections": 0, "queued": 0}

    update_connection(UpdateConnection(connection.id, enabled=True), hub.uow("tests"))
    with hub.session_factory() as session, session.begin():
        session.execute(update(WebhookReceipt).values(processed_at=clock.now()))
    assert repair_webhook_receipts(hub) == {"connections": 0, "queued": 0}
    assert jobs(hub) == []
