"""The outbox relay: every committed outbox row becomes push work, exactly once.

For each outbox row not yet relayed, the relay works out which local records
it touched (a subscription change touches the subscription and its customer,
whose CRM record shows status, plan and MRR), and for every enabled connection
with a mapping that pushes that object type it marks the record dirty in
``sync_states`` — in the same transaction that marks the outbox row relayed.
Only then are the push jobs enqueued. A crash between the two, or a queue that
loses jobs, leaves dirty rows behind; :func:`repair` enqueues them again.
Relaying twice is harmless: sync states are keyed by record, job ids are
deterministic.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hub.bootstrap import Hub
from hub.store.db import one_of
from hub.store.models import Connection, Event, Mapping, OutboxMessage, Subscription, SyncState
from jobs.queue import Queue

PUSH = "push_changes"
PUSHING_DIRECTIONS = {"push", "both"}


def _touched(aggregate_type: str, aggregate_id: str, customer_id: str | None) -> list[tuple[str, str]]:
    """The (object type, local id) pairs whose remote copies may need this change."""
    touched = [(aggregate_type, aggregate_id)]
    if aggregate_type in ("subscription", "invoice", "payment", "credit_note") and customer_id:
        touched.append(("customer", customer_id))
    return touched


def _dependents(session: Any, rows: list[Any]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Subscriptions whose remote copies show their customer's or plan's data (a deal's name shows
    both): a renamed customer or plan touches them too. One query per kind, not per row."""
    ids: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row.aggregate_type in ("customer", "plan"):
            ids[row.aggregate_type].add(row.aggregate_id)
    found: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for kind, column in (("customer", Subscription.customer_id), ("plan", Subscription.plan_id)):
        if ids[kind]:
            for subscription_id, owner_id in session.execute(
                select(Subscription.id, column).where(one_of(session, column, ids[kind]))
            ):
                found[(kind, owner_id)].append(("subscription", subscription_id))
    return found


def queue_push(queue: Queue, connection_id: str, object_type: str) -> bool:
    """Queue the push run of one connection and object type (a no-op when it is already waiting)."""
    args = {"connection_id": connection_id, "object_type": object_type}
    return queue.enqueue(PUSH, args, push_job_id(connection_id, object_type))


def push_job_id(connection_id: str, object_type: str) -> str:
    """One push job per connection and object type drains every dirty record of that type in
    vendor-sized batches: many changes, to one record or to many, become few requests."""
    return f"push:{connection_id}:{object_type}"


@dataclass
class RelayReport:
    relayed: int = 0
    marked: int = 0
    enqueued: int = 0


def pushing_mappings(session: Any) -> dict[str, list[str]]:
    """object type → enabled connections whose mapping pushes it."""
    rows = session.execute(
        select(Mapping.object_type, Mapping.connection_id, Mapping.definition)
        .join(Connection, Connection.id == Mapping.connection_id)
        .where(Connection.enabled.is_(True))
    )
    found: dict[str, list[str]] = defaultdict(list)
    for object_type, connection_id, definition in rows:
        directions = {f.get("direction") for f in (definition or {}).get("fields", [])}
        if directions & PUSHING_DIRECTIONS:
            found[object_type].append(connection_id)
    return found


def relay(hub: Hub, queue: Queue, batch_size: int = 500) -> RelayReport:
    """Relay up to ``batch_size`` outbox rows, oldest first."""
    report = RelayReport()
    now = hub.clock.now()
    pushes: set[tuple[str, str]] = set()
    with hub.session_factory() as session, session.begin():
        query = (
            select(
                OutboxMessage.id,
                OutboxMessage.aggregate_type,
                OutboxMessage.aggregate_id,
                OutboxMessage.event_id,
                Event.customer_id,
            )
            .join(Event, Event.id == OutboxMessage.event_id)
            .where(OutboxMessage.relayed_at.is_(None))
            .order_by(OutboxMessage.id)
            .limit(batch_size)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(of=OutboxMessage, skip_locked=True)
        rows = list(session.execute(query))
        if not rows:
            return report
        targets = pushing_mappings(session)
        dependents = _dependents(session, rows) if "subscription" in targets else {}
        wanted: dict[tuple[str, str, str], int] = {}
        for row in rows:
            touched = _touched(row.aggregate_type, row.aggregate_id, row.customer_id)
            touched += dependents.get((row.aggregate_type, row.aggregate_id), [])
            for object_type, local_id in touched:
                for connection_id in targets.get(object_type, []):
                    key = (connection_id, object_type, local_id)
                    wanted[key] = max(wanted.get(key, 0), row.event_id)
        session.execute(
            update(OutboxMessage)
            .where(one_of(session, OutboxMessage.id, [row.id for row in rows]))
            .values(relayed_at=now)
        )
        _mark_dirty(session, wanted, now)
        pushes = {(connection_id, object_type) for connection_id, object_type, _local_id in wanted}
        report.relayed = len(rows)
        report.marked = len(wanted)
    for connection_id, object_type in sorted(pushes):
        report.enqueued += int(queue_push(queue, connection_id, object_type))
    return report


def _mark_dirty(session: Any, wanted: dict[tuple[str, str, str], int], now: Any) -> None:
    """Upsert one sync state per record, all in one statement: a new one is dirty from now, one already
    dirty keeps its time (and its retry schedule) and takes the newer event."""
    if not wanted:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    upsert = dialect.insert(SyncState)
    newer, current = upsert.excluded.wanted_event_id, SyncState.wanted_event_id
    upsert = upsert.on_conflict_do_update(
        index_elements=[SyncState.connection_id, SyncState.object_type, SyncState.local_id],
        set_={"wanted_event_id": case((newer > current, newer), else_=current)},
    )
    rows = [
        {
            "connection_id": connection_id,
            "object_type": object_type,
            "local_id": local_id,
            "wanted_event_id": event_id,
            "dirty_since": now,
            "attempts": 0,
            "next_attempt_at": now,
        }
        # In key order, so that two relays upserting the same records lock them in the same order.
        for (connection_id, object_type, local_id), event_id in sorted(wanted.items())
    ]
    session.execute(upsert, rows)


def repair(hub: Hub, queue: Queue, older_than: timedelta) -> int:
    """Enqueue push jobs for due work no job is known to hold: records whose retry time has come
    (after a failure, or after waiting for a late write, nothing else queues them) and first attempts
    waiting longer than ``older_than`` (their job was lost: a crash after the commit, a dead worker, a
    Redis restart)."""
    now = hub.clock.now()
    put_off = or_(SyncState.attempts > 0, SyncState.next_attempt_at > SyncState.dirty_since)
    retry_due = and_(put_off, SyncState.next_attempt_at <= now)
    overdue = SyncState.next_attempt_at <= now - older_than
    with hub.session_factory() as session:
        stale = list(
            session.execute(
                select(SyncState.connection_id, SyncState.object_type)
                .where(or_(retry_due, overdue))
                .distinct()
            )
        )
    return sum(int(queue_push(queue, connection_id, object_type)) for connection_id, object_type in stale)
