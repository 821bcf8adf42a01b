"""The sync jobs: push dirty records, process stored webhooks, poll change cursors.

Each takes ids, reads the current state, and is idempotent: running it twice
has the effect of running it once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from connectors.base import Connector
from connectors.errors import ConnectorError
from hub.services.associations import associate_subscriptions
from hub.services.connection_status import record_exchange
from hub.services.connections import open_connector
from hub.services.runtime import Runtime
from hub.services.sync import SyncReport, actor, forget_remote_records, pull_records, push_changes
from hub.store.models import Connection, Mapping, SyncCursor, WebhookReceipt
from jobs.registry import job
from jobs.relay import PUSH, queue_push

log = logging.getLogger(__name__)
RECEIPTS_PER_RUN = 1000
PUSH_BUDGET_SECONDS = 20.0  # one push run's share of the lease (60 s) and the time limit (15 min)
ASSOCIATED = ("subscription", "customer")  # a push of either may complete a subscription ↔ customer pair


@job(PUSH)
def push_job(hub: Runtime, connection_id: str, object_type: str, **_: Any) -> dict[str, Any]:
    """Push batch after batch while there is more, within a time budget well inside the lease, then
    hand the rest to a new run: a backlog drains without a queue round trip (or an rq fork) per batch."""
    total = push_changes(hub, connection_id, object_type, seconds=PUSH_BUDGET_SECONDS)
    if total.pushed and object_type in ASSOCIATED:
        connector = open_connector(hub.uow(actor(connection_id)), connection_id)
        total.errors += associate_subscriptions(hub, connection_id, connector).errors
    if total.more:
        from jobs.runtime import make_queue

        queue_push(make_queue(hub), connection_id, object_type)
    return total.__dict__


PROCESS_JOB = "process_webhooks"
REPAIR_RECEIPTS_AFTER = timedelta(seconds=60)  # receipts still unprocessed this long after arriving


def process_job_id(connection_id: str) -> str:
    """One waiting job per connection, however many deliveries ask for it."""
    return f"webhooks:{connection_id}"


@job(PROCESS_JOB)
def process_webhooks(hub: Runtime, connection_id: str, **_: Any) -> dict[str, Any]:
    """Re-read each record the stored events name (events are hints, the record is the truth), then pull.

    A record that can no longer be read is gone, whatever the event said (a deletion, or a change followed
    by one): its link is dropped and the hub's record kept (:func:`forget_remote_records`). A record deleted
    and then restored reads back, so it stays linked and is pulled like any change.
    """
    with hub.session_factory() as session:
        receipts = list(
            session.scalars(
                select(WebhookReceipt)
                .where(WebhookReceipt.connection_id == connection_id, WebhookReceipt.processed_at.is_(None))
                .order_by(WebhookReceipt.received_at, WebhookReceipt.id)
                .limit(RECEIPTS_PER_RUN)
            )
        )
    if not receipts:
        return {**SyncReport().__dict__, "remote_deleted": 0}
    connector = open_connector(hub.uow(actor(connection_id)), connection_id)
    wanted: dict[str, set[str]] = {}
    for receipt in receipts:
        payload = receipt.payload
        wanted.setdefault(payload["object_type"], set()).add(str(payload["remote_id"]))
    total = SyncReport()
    unlinked = 0
    try:
        for remote_object, remote_ids in wanted.items():
            found = connector.read_many(remote_object, sorted(remote_ids))
            report = pull_records(hub, connection_id, remote_object, list(found.values()), connector)
            total.add(report)
            gone = sorted(remote_ids - set(found))
            unlinked += len(
                forget_remote_records(hub, connection_id, remote_object, gone, found_by="webhook")
            )
    except ConnectorError as error:  # the receipts stay unprocessed: the job's retry reads them again
        record_exchange(hub, connection_id, "reading the records webhooks named", error)
        raise
    record_exchange(hub, connection_id, "reading the records webhooks named")
    with hub.session_factory() as session, session.begin():
        session.execute(
            update(WebhookReceipt)
            .where(WebhookReceipt.id.in_([r.id for r in receipts]))
            .values(processed_at=hub.clock.now())
        )
    if len(receipts) == RECEIPTS_PER_RUN:  # more may be waiting: carry on in a run of its own
        from jobs.runtime import make_queue

        make_queue(hub).enqueue(PROCESS_JOB, {"connection_id": connection_id}, process_job_id(connection_id))
    return {**total.__dict__, "remote_deleted": unlinked}


@job("poll_connections")
def poll_connections(hub: Runtime, **_: Any) -> dict[str, Any]:
    """For every enabled connection, read what changed since its cursor for each pulled object.

    A connection whose vendor fails is skipped until the next run (its page shows the error, see
    :func:`poll`); the others are polled all the same. Its entry is the error instead of a count.
    """
    with hub.session_factory() as session:
        targets = list(
            session.execute(
                select(Mapping.connection_id, Mapping.definition)
                .join(Connection, Connection.id == Mapping.connection_id)
                .where(Connection.enabled.is_(True))
            )
        )
    polled: dict[str, int] = {}
    for connection_id, definition in targets:
        directions = {f.get("direction") for f in definition.get("fields", [])}
        if not directions & {"pull", "both"}:
            continue
        key = f"{connection_id}:{definition['remote_object']}"
        try:
            polled[key] = poll(hub, connection_id, definition["remote_object"])
        except ConnectorError as error:
            log.warning("polling %s failed: %s", key, error)
            polled[key] = str(error)
    return polled


def poll(hub: Runtime, connection_id: str, remote_object: str, max_pages: int = 50) -> int:
    """Read changes page by page from the stored cursor; the cursor moves only after a page is applied.

    The outcome is recorded on the connection (:func:`record_exchange`); a vendor error is raised after.
    """
    connector = open_connector(hub.uow(actor(connection_id)), connection_id)
    try:
        seen = _poll_pages(hub, connection_id, remote_object, connector, max_pages)
    except ConnectorError as error:
        record_exchange(hub, connection_id, f"polling {remote_object}", error)
        raise
    record_exchange(hub, connection_id, f"polling {remote_object}")
    return seen


def _poll_pages(
    hub: Runtime, connection_id: str, remote_object: str, connector: Connector, max_pages: int
) -> int:
    with hub.session_factory() as session:
        stored = session.get(SyncCursor, (connection_id, remote_object))
        cursor = stored.cursor if stored else None
    seen = 0
    for _ in range(max_pages):
        page = connector.read_changes(remote_object, cursor)
        pull_records(hub, connection_id, remote_object, page.records, connector)
        seen += len(page.records)
        cursor = page.cursor
        with hub.session_factory() as session, session.begin():
            row = session.get(SyncCursor, (connection_id, remote_object), with_for_update=True)
            if row is None:
                session.add(
                    SyncCursor(
                        connection_id=connection_id,
                        remote_object=remote_object,
                        cursor=cursor,
                        updated_at=datetime.now(UTC),
                    )
                )
            else:
                row.cursor, row.updated_at = cursor, datetime.now(UTC)
        if not page.has_more:
            break
    return seen


@job("repair_webhook_receipts")
def repair_webhook_receipts(hub: Runtime, **_: Any) -> dict[str, Any]:
    """Queue ``process_webhooks`` for each enabled connection with receipts unprocessed for too long.

    The webhook endpoint queues the job right after storing the events. Should that enqueue fail after
    the commit (the delivery was answered 503, but the vendor may not retry) or the job be lost (a
    Redis flush), the receipts would wait for the connection's next webhook; this picks them up within
    ``REPAIR_RECEIPTS_AFTER`` and one schedule interval. A connection whose job is already waiting is
    left as it is (``enqueue`` is a no-op then).
    """
    from jobs.runtime import make_queue

    before = hub.clock.now() - REPAIR_RECEIPTS_AFTER
    with hub.session_factory() as session:
        connection_ids = list(
            session.scalars(
                select(WebhookReceipt.connection_id)
                .join(Connection, Connection.id == WebhookReceipt.connection_id)
                .where(
                    WebhookReceipt.processed_at.is_(None),
                    WebhookReceipt.received_at < before,
                    Connection.enabled.is_(True),
                )
                .distinct()
            )
        )
    queue = make_queue(hub)
    queued = [
        connection_id
        for connection_id in sorted(connection_ids)
        if queue.enqueue(PROCESS_JOB, {"connection_id": connection_id}, process_job_id(connection_id))
    ]
    if queued:
        log.warning("unprocessed webhook receipts: processing queued for %s", queued)
    return {"connections": len(connection_ids), "queued": len(queued)}
