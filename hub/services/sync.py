"""Two-way sync between the store and one connection.

Outbound (:func:`push_changes`): the records the relay marked dirty are read
from the store as they are *now*, mapped, compared field by field with the
link's fingerprints of what was last synced, and only what changed is written,
in the vendor's batch sizes. Inbound (:func:`pull_records`, fed by webhooks and
polling): each remote record is compared the same way; remote-only changes are
applied through the service layer, hub-only changes are pushed, both-sided
changes follow the field's policy or become a conflict for a person. After a
push the fingerprints hold exactly what was sent, so the vendor echoing it back
finds nothing changed: no loops.

Failures: a retriable error (timeout, 5xx, 429) reschedules the record with a
growing delay on its sync state; a permanent one (validation, not found, or
retries spent) becomes a dead letter with the scrubbed request and response.
One bad record never holds back the others.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from connectors.base import Connector, RemoteRecord, WriteItem, WriteResult
from connectors.errors import ConnectorError, RetriableError
from hub.domain.calendar import months_per_period
from hub.domain.errors import AbohubError
from hub.domain.ids import new_id
from hub.domain.invoicing import InvoiceStatus
from hub.domain.lifecycle import Status
from hub.domain.mrr import subscription_mrr
from hub.services.connection_status import record_exchange
from hub.services.connections import open_connector
from hub.services.customers import UpdateCustomer, update_customer
from hub.services.revenue import forever_discount
from hub.services.runtime import Runtime
from hub.services.snapshot import jsonable
from hub.store.db import one_of
from hub.store.models import (
    Conflict,
    Connection,
    Coupon,
    CreditNote,
    Customer,
    DeadLetter,
    Invoice,
    Link,
    Plan,
    Subscription,
    SyncState,
)
from hub.store.models import Mapping as MappingRow
from mappings import Mapping, plan_record
from mappings import Plan as RecordPlan
from mappings.engine import local_match_keys, remote_match_keys

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=1)
PUSH_BATCH = 500
PUSH_SLICE = 100  # records read, planned, sent and recorded together: the vendors' batch size
PUSH_AHEAD = 3  # slices read and planned ahead of the one being sent, at most (values read go stale)
PULLABLE = {"customer": {"name", "email", "country", "vat_number", "locale"}}


@dataclass
class SyncReport:
    pushed: int = 0
    pulled: int = 0
    unchanged: int = 0
    conflicts: int = 0
    rescheduled: int = 0
    dead_lettered: int = 0
    linked: int = 0
    more: bool = False
    errors: list[str] = field(default_factory=list)

    def add(self, other: SyncReport) -> None:
        """Count ``other`` in (``more`` is left alone: it says something about the latest run only)."""
        for name in ("pushed", "pulled", "unchanged", "conflicts", "rescheduled", "dead_lettered", "linked"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors


def actor(connection_id: str) -> str:
    return f"sync:{connection_id}"


def load_mapping(session: Session, connection_id: str, object_type: str) -> Mapping | None:
    row = session.scalar(
        select(MappingRow).where(
            MappingRow.connection_id == connection_id, MappingRow.object_type == object_type
        )
    )
    return Mapping.load(row.definition) if row else None


def mapping_for_remote(session: Session, connection_id: str, remote_object: str) -> Mapping | None:
    for row in session.scalars(select(MappingRow).where(MappingRow.connection_id == connection_id)):
        if row.definition.get("remote_object") == remote_object:
            return Mapping.load(row.definition)
    return None


# --- what the hub knows, as mapping input -------------------------------------------------------


def local_values(session: Session, object_type: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The mappable fields of each record, by id (records that no longer exist are left out)."""
    if object_type == "customer":
        return _customer_values(session, ids)
    if object_type == "subscription":
        return _subscription_values(session, ids)
    raise ValueError(f"no local object type {object_type!r}")


def _customer_values(session: Session, ids: list[str]) -> dict[str, dict[str, Any]]:
    plans: dict[str, set[str]] = defaultdict(set)
    for customer_id, plan_name in session.execute(
        select(Subscription.customer_id, Plan.name)
        .join(Plan, Plan.id == Subscription.plan_id)
        .where(one_of(session, Subscription.customer_id, ids), Subscription.status != "canceled")
    ):
        plans[customer_id].add(plan_name)
    lifetime = _lifetime_values(session, ids)
    values = {}
    # The columns alone: building whole Customer objects would cost more than planning their push.
    rows = session.execute(
        select(
            Customer.id,
            Customer.name,
            Customer.email,
            Customer.country,
            Customer.vat_number,
            Customer.locale,
            Customer.currency,
            Customer.mrr,
            Customer.revenue_state,
            Customer.updated_at,
        ).where(one_of(session, Customer.id, ids))
    )
    for customer in rows:
        values[customer.id] = {
            "id": customer.id,
            "name": customer.name,
            "email": customer.email,
            "country": customer.country,
            "vat_number": customer.vat_number,
            "locale": customer.locale,
            "currency": customer.currency,
            "mrr": customer.mrr,
            "lifetime_value": lifetime.get(customer.id, 0),
            "revenue_state": customer.revenue_state,
            "plan_names": ", ".join(sorted(plans[customer.id])) or None,
            "updated_at": customer.updated_at,
        }
    return values


def _lifetime_values(session: Session, ids: list[str]) -> dict[str, int]:
    """Each customer's lifetime value to date: the net revenue they have paid, in minor units.

    It is the sum over the customer's *paid* invoices of their net amount (total less VAT, so after
    discounts), less the net amount of every credit note on those invoices (refunded or not): VAT is
    not revenue, and MRR beside it on the contact is without VAT too. Open, void and uncollectible
    invoices are not revenue yet; an invoice settled by a credit note counts with 0. Only invoices in
    the customer's own currency count (amounts are never converted). This is realised revenue of one
    customer, not the metrics' LTV (ARPA ÷ churn rate, a forecast per currency; docs/metrics.md).
    """
    paid = (Invoice.status == InvoiceStatus.PAID.value) & (Invoice.currency == Customer.currency)
    credited = (
        select(func.coalesce(func.sum(CreditNote.net_amount), 0))
        .where(CreditNote.invoice_id == Invoice.id)
        .correlate(Invoice)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Invoice.customer_id, func.sum(Invoice.total - Invoice.vat - credited))
        .join(Customer, Customer.id == Invoice.customer_id)
        .where(one_of(session, Invoice.customer_id, ids), paid)
        .group_by(Invoice.customer_id)
    )
    return {customer_id: int(amount or 0) for customer_id, amount in rows}


def _subscription_values(session: Session, ids: list[str]) -> dict[str, dict[str, Any]]:
    values = {}
    rows = session.execute(
        select(Subscription, Plan, Customer.name, Customer.email, Coupon)
        .join(Plan, Plan.id == Subscription.plan_id)
        .join(Customer, Customer.id == Subscription.customer_id)
        .outerjoin(Coupon, Coupon.id == Subscription.coupon_id)
        .where(one_of(session, Subscription.id, ids))
    )
    for sub, plan, name, email, coupon in rows:
        values[sub.id] = {
            "id": sub.id,
            "status": sub.status,
            "plan_name": plan.name,
            "mrr": sub.mrr,
            # What the subscription is worth per month when it pays: its MRR whatever its status.
            "monthly_value": subscription_mrr(
                Status.ACTIVE.value,
                plan.amount,
                sub.quantity,
                months_per_period(plan.interval, plan.interval_count),
                forever_discount(coupon),
            ),
            "customer_id": sub.customer_id,
            "customer_email": email,
            "customer_label": name.strip() or email,
            "currency": sub.currency,
            "current_period_end": sub.current_period_end,
            "updated_at": sub.updated_at,
        }
    return values


# --- outbound ----------------------------------------------------------------------------------


def push_changes(
    hub: Runtime,
    connection_id: str,
    object_type: str,
    batch_size: int = PUSH_BATCH,
    seconds: float = 0.0,
) -> SyncReport:
    """Push dirty records of ``object_type``: one batch of up to ``batch_size``, or batch after batch for
    ``seconds`` (started within them); ``more`` says if some are left.

    A disabled connection pushes nothing: its dirty records wait, marked, until it is enabled again.
    The records go in slices of :data:`PUSH_SLICE` through one sending thread: while it sends a slice
    (paced by the vendor's rate limit) and records the outcome, the next ones are read and planned, up
    to :data:`PUSH_AHEAD` slices ahead, across batches too. A record is read again only once its slice
    is recorded, so its changes go out in order.
    """
    report = SyncReport()
    deadline = time.monotonic() + seconds
    connector: Connector | None = None
    in_flight: deque[tuple[Future[None], list[int]]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="push-sender") as sender:
        while True:
            while in_flight and in_flight[0][0].done():
                in_flight.popleft()[0].result()
            batch = _dirty(hub, connection_id, object_type, batch_size, in_flight)
            if batch is None:  # disabled, or nothing due that is not on its way already
                report.more = False
                break
            mapping, states, report.more = batch
            if connector is None:
                connector = open_connector(hub.uow(actor(connection_id)), connection_id)
            for start in range(0, len(states), PUSH_SLICE):
                while len(in_flight) >= PUSH_AHEAD:
                    in_flight.popleft()[0].result()
                prepared = _prepare(hub, connection_id, mapping, states[start : start + PUSH_SLICE])
                delivery = sender.submit(_deliver, hub, connector, mapping, prepared, report)
                in_flight.append((delivery, [state.id for state in prepared.states] + list(prepared.waiting)))
            if not report.more or time.monotonic() >= deadline:
                break
    for delivery, _ in in_flight:
        delivery.result()
    return report


def _dirty(
    hub: Runtime,
    connection_id: str,
    object_type: str,
    batch_size: int,
    in_flight: deque[tuple[Future[None], list[int]]],
) -> tuple[Mapping, list[SyncState], bool] | None:
    """The connection's mapping, its next due dirty states (not those of slices on their way), and
    whether more are due; None when there is nothing to push. Without a mapping, nothing is: the due
    states are forgotten."""
    with hub.session_factory() as session:
        if not session.scalar(select(Connection.enabled).where(Connection.id == connection_id)):
            return None
        mapping = load_mapping(session, connection_id, object_type)
        due = (
            SyncState.connection_id == connection_id,
            SyncState.object_type == object_type,
            SyncState.next_attempt_at <= hub.clock.now(),
        )
        if mapping is None:
            session.execute(delete(SyncState).where(*due).execution_options(synchronize_session=False))
            session.commit()
            return None
        query = select(SyncState).where(*due)
        sending = [state_id for _, ids in in_flight for state_id in ids]
        if sending:
            query = query.where(~one_of(session, SyncState.id, sending))
        states = list(
            session.scalars(query.order_by(SyncState.dirty_since, SyncState.id).limit(batch_size + 1))
        )
        session.expunge_all()
    if not states:
        return None
    return mapping, states[:batch_size], len(states) > batch_size


@dataclass
class _Slice:
    """Dirty records read from the store with their links and their plans against the hub side alone."""

    connection_id: str
    states: list[SyncState]
    values: dict[str, dict[str, Any]]
    links: dict[str, Any]  # local id → (local_id, remote_id, fingerprints, late_write_until) of its link
    plans: dict[str, RecordPlan]
    waiting: dict[int, datetime]  # sync state id → until when its record's unanswered write may land


def _prepare(hub: Runtime, connection_id: str, mapping: Mapping, states: list[SyncState]) -> _Slice:
    ids = [state.local_id for state in states]
    with hub.session_factory() as session:
        values = local_values(session, mapping.object_type, ids)
        links = {
            link.local_id: link
            for link in session.execute(
                select(Link.local_id, Link.remote_id, Link.fingerprints, Link.late_write_until).where(
                    Link.connection_id == connection_id,
                    Link.object_type == mapping.object_type,
                    one_of(session, Link.local_id, ids),
                )
            )
        }
    now = hub.clock.now()
    plans = {}
    waiting = {}
    for state in states:
        local = values.get(state.local_id)
        if local is None:
            continue  # deleted meanwhile: nothing to push
        link = links.get(state.local_id)
        if link is not None and link.late_write_until is not None and link.late_write_until > now:
            waiting[state.id] = link.late_write_until  # its unanswered write may yet land: not over it
            continue
        plans[state.local_id] = plan_record(
            mapping, local, {} if link else None, link.fingerprints if link else None
        )
    sending = [state for state in states if state.id not in waiting]
    return _Slice(connection_id, sending, values, links, plans, waiting)


def _deliver(hub: Runtime, connector: Connector, mapping: Mapping, work: _Slice, report: SyncReport) -> None:
    """Send a slice's changes and record the outcome: links, dead letters, retries, conflicts."""
    connection_id, object_type, remote_object = work.connection_id, mapping.object_type, mapping.remote_object
    states, values, links, plans = work.states, work.values, work.links, work.plans
    items: list[WriteItem] = []
    held: list[tuple[str, str, Any]] = []
    # Fields the remote side may also have changed: look before writing, so the field's policy
    # (or a person) decides instead of the push silently overwriting. One batch read for them all.
    clashing = {i for i, plan in plans.items() if i in links and _may_clash(mapping, plan)}
    remote_ids = [links[i].remote_id for i in plans if i in clashing]
    remotes = connector.read_many(remote_object, remote_ids) if remote_ids else {}
    for state in states:
        if state.local_id not in plans:
            continue
        local, link = values[state.local_id], links.get(state.local_id)
        plan = plans[state.local_id]
        if link is not None and state.local_id in clashing:
            remote = remotes.get(link.remote_id)
            plan = plan_record(
                mapping,
                local,
                remote.properties if remote else None,
                link.fingerprints,
                hub_changed_at=local.get("updated_at"),
                remote_changed_at=remote.updated_at if remote else None,
            )
            for conflict in plan.conflicts:
                held.append((state.local_id, link.remote_id, conflict))
        plans[state.local_id] = plan
        if plan.push or link is None:
            items.append(
                WriteItem(
                    local_id=state.local_id,
                    properties=plan.push,
                    idempotency_key=f"{connection_id}:{state.local_id}:{state.wanted_event_id}",
                    remote_id=link.remote_id if link else None,
                )
            )
        else:
            report.unchanged += 1
    results = _write(hub, connection_id, connector, remote_object, items)
    now = hub.clock.now()
    landed = {local_id for local_id, result in results.items() if result.ok and result.remote_id}
    written = [
        (item.local_id, results[item.local_id].remote_id, plans[item.local_id].fingerprints)
        for item in items
        if item.local_id in landed
    ]
    by_id = {state.local_id: state for state in states}
    refused = [
        (by_id[item.local_id], item, results[item.local_id].error)
        for item in items
        if item.local_id not in landed
    ]
    refreshed = [
        (local_id, links[local_id].remote_id, plan.fingerprints)
        for local_id, plan in plans.items()
        if local_id not in results and plan.fingerprints_changed and local_id in links
    ]
    unanswered = [local_id for local_id, result in results.items() if result.unanswered]
    with hub.session_factory() as session, session.begin():
        save_links(session, connection_id, object_type, remote_object, written, now, pushed=True)
        _late_writes(hub, session, connection_id, object_type, unanswered, now)  # new records' links too
        _wait_for_late_writes(session, work.waiting, report)
        # A record that goes through settles its earlier dead letters.
        settle_dead_letters(session, connection_id, object_type, [local_id for local_id, *_ in written], now)
        _failed(session, report, connection_id, object_type, refused, now)
        save_links(session, connection_id, object_type, remote_object, refreshed, now, pushed=False)
        for local_id, remote_id, conflict in held:
            _hold_conflict(session, connection_id, object_type, local_id, remote_id, conflict, now)
        _clear(
            session,
            connection_id,
            object_type,
            [s for s in states if s.local_id not in results or results[s.local_id].ok],
        )
    report.pushed += len(written)
    report.conflicts += len(held)


def _may_clash(mapping: Mapping, plan: Any) -> bool:
    """Does the plan push a two-way field whose policy is not simply "the hub wins"?"""
    for one in plan.fields:
        if not one.push:
            continue
        entry = mapping.field(one.field)
        if entry.direction.value == "both" and entry.policy.value != "hub_wins":
            return True
    return False


def _late_writes(
    hub: Runtime, session: Session, connection_id: str, object_type: str, local_ids: list[str], now: datetime
) -> None:
    """Writes that went unanswered may land until ``ABOHUB_SYNC_LATE_WRITE_SECONDS`` from now: the
    records' next writes wait for that (a late landing would otherwise overwrite them)."""
    if local_ids:
        session.execute(
            update(Link)
            .where(
                Link.connection_id == connection_id,
                Link.object_type == object_type,
                one_of(session, Link.local_id, local_ids),
            )
            .values(late_write_until=now + timedelta(seconds=hub.settings.sync_late_write_seconds))
            .execution_options(synchronize_session=False)
        )


def _wait_for_late_writes(session: Session, waiting: dict[int, datetime], report: SyncReport) -> None:
    """Sync states whose record may still see an earlier write land: due again once it cannot."""
    if waiting:
        session.connection().execute(
            update(SyncState)
            .where(SyncState.id == bindparam("state_id"))
            .values(next_attempt_at=bindparam("until")),
            [{"state_id": state_id, "until": until} for state_id, until in waiting.items()],
        )
        report.rescheduled += len(waiting)


def _write(
    hub: Runtime, connection_id: str, connector: Connector, remote_object: str, items: list[WriteItem]
) -> dict[str, Any]:
    """Each item's result; a failure of the whole batch (e.g. the vendor is down) fails every item. The
    outcome is recorded on the connection (:func:`record_exchange`)."""
    if not items:
        return {}
    try:
        results = connector.write_batch(remote_object, items)
    except ConnectorError as error:
        record_exchange(hub, connection_id, f"writing {remote_object}", error)
        results = [WriteResult(item.local_id, item.remote_id, ok=False, error=error) for item in items]
    else:
        record_exchange(hub, connection_id, f"writing {remote_object}")
    return {result.local_id: result for result in results}


def save_link(
    session: Session,
    connection_id: str,
    object_type: str,
    remote_object: str,
    local_id: str,
    remote_id: str,
    fingerprints: dict[str, str],
    now: datetime,
    *,
    pushed: bool,
) -> None:
    save_links(
        session,
        connection_id,
        object_type,
        remote_object,
        [(local_id, remote_id, fingerprints)],
        now,
        pushed=pushed,
    )


def save_links(
    session: Session,
    connection_id: str,
    object_type: str,
    remote_object: str,
    pairs: list[tuple[str, str, dict[str, str]]],
    now: datetime,
    *,
    pushed: bool,
) -> None:
    """Link each (local id, remote id) and merge in its fingerprints; one query for the existing links,
    one statement for the updates and one for the new links."""
    if not pairs:
        return
    existing = {
        local_id: (link_id, old)
        for local_id, link_id, old in session.execute(
            select(Link.local_id, Link.id, Link.fingerprints)
            .where(
                Link.connection_id == connection_id,
                Link.object_type == object_type,
                one_of(session, Link.local_id, [local_id for local_id, _, _ in pairs]),
            )
            .with_for_update()
        )
    }
    synced_at = "last_pushed_at" if pushed else "last_pulled_at"
    rows: dict[str, dict[str, Any]] = {}
    for local_id, remote_id, fingerprints in pairs:
        link_id, old = existing.get(local_id, (None, None))
        row = rows.setdefault(local_id, {"id": link_id, "fingerprints": old or {}})
        row |= {
            "remote_id": remote_id,
            "fingerprints": {**row["fingerprints"], **fingerprints},
            "updated_at": now,
            synced_at: now,
        }
    changed = ("remote_id", "fingerprints", "updated_at", synced_at)
    updates = [
        {"b_id": row["id"], **{f"b_{name}": row[name] for name in changed}}
        for row in rows.values()
        if row["id"] is not None
    ]
    if updates:
        # One executemany on the table: the ORM's bulk update by primary key costs more than the SQL.
        table = Link.__table__
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({name: bindparam(f"b_{name}") for name in changed})
        )
        session.connection().execute(statement, updates)
    created = [
        {
            **{k: v for k, v in row.items() if k != "id"},
            "connection_id": connection_id,
            "object_type": object_type,
            "local_id": local_id,
            "remote_object": remote_object,
            "created_at": now,
        }
        for local_id, row in rows.items()
        if row["id"] is None
    ]
    if created:
        session.execute(insert(Link), created)


def _clear(session: Session, connection_id: str, object_type: str, states: list[SyncState]) -> None:
    """Forget finished work, unless a newer change came in while it ran (a change keeps the row's id
    and raises its ``wanted_event_id``).

    By primary key: sync states come and go in bursts, so PostgreSQL's statistics of the table are
    often stale (a table it believes empty), and a match on the other columns then filters every
    dirty state of the connection instead of looking up these ones.
    """
    if states:
        session.execute(
            delete(SyncState)
            .where(
                one_of(session, SyncState.id, [state.id for state in states]),
                SyncState.connection_id == connection_id,
                SyncState.object_type == object_type,
                tuple_(SyncState.id, SyncState.wanted_event_id).in_(
                    [(state.id, state.wanted_event_id) for state in states]
                ),
            )
            .execution_options(synchronize_session=False)
        )


def _failed(
    session: Session,
    report: SyncReport,
    connection_id: str,
    object_type: str,
    refused: list[tuple[SyncState, WriteItem, Exception | None]],
    now: datetime,
) -> None:
    """Reschedule what may work later (with a growing delay); dead-letter the rest and the tries spent."""
    if not refused:
        return
    live_states = {
        live.local_id: live
        for live in session.scalars(
            select(SyncState)
            .where(
                SyncState.connection_id == connection_id,
                SyncState.object_type == object_type,
                one_of(session, SyncState.local_id, [state.local_id for state, _, _ in refused]),
            )
            .with_for_update()
        )
    }
    for state, item, error in refused:
        live = live_states.get(state.local_id)
        reason = str(error) if error else "the vendor gave no result for this record"
        report.errors.append(f"{state.local_id}: {reason}")
        attempts = (live.attempts if live else state.attempts) + 1
        if isinstance(error, RetriableError) and attempts < MAX_ATTEMPTS and live is not None:
            delay = min(MAX_DELAY, BASE_DELAY * 2 ** (attempts - 1))
            if getattr(error, "retry_after", None):
                delay = max(delay, timedelta(seconds=float(error.retry_after)))  # type: ignore[union-attr]
            live.attempts, live.next_attempt_at, live.last_error = attempts, now + delay, reason[:2000]
            report.rescheduled += 1
            continue
        exchange = getattr(error, "exchange", None)
        session.add(
            DeadLetter(
                id=new_id("dl"),
                connection_id=connection_id,
                object_type=object_type,
                local_id=state.local_id,
                remote_id=item.remote_id,
                operation="push",
                idempotency_key=item.idempotency_key,
                reason=reason[:4000],
                request=exchange.to_dict() if exchange else {"properties": jsonable(item.properties)},
                response=None,
                attempts=attempts,
                created_at=now,
            )
        )
        if live is not None:
            session.delete(live)
        report.dead_lettered += 1


# --- inbound -----------------------------------------------------------------------------------


def pull_records(
    hub: Runtime,
    connection_id: str,
    remote_object: str,
    records: list[RemoteRecord],
    connector: Connector | None = None,
) -> SyncReport:
    """Bring remote changes in: apply, push back, resolve by policy or raise conflicts."""
    report = SyncReport()
    with hub.session_factory() as session:
        mapping = mapping_for_remote(session, connection_id, remote_object)
        if mapping is None or not records:
            return report
        object_type = mapping.object_type
        links = {
            link.remote_id: link
            for link in session.scalars(
                select(Link).where(
                    Link.connection_id == connection_id,
                    Link.remote_object == remote_object,
                    one_of(session, Link.remote_id, [r.id for r in records]),
                )
            )
        }
        matched = _match(session, connection_id, mapping, [r for r in records if r.id not in links])
        session.expunge_all()
    report.linked = len(matched)
    pairs = [
        (record, links[record.id].local_id if record.id in links else matched.get(record.id))
        for record in records
        if not record.archived
    ]
    pairs = [(record, local_id) for record, local_id in pairs if local_id]
    with hub.session_factory() as session:
        values = local_values(session, object_type, [local_id for _, local_id in pairs])
    planned = []
    for record, local_id in pairs:
        local = values.get(local_id)
        if local is None:
            continue
        link = links.get(record.id)
        planned.append(
            Planned(local_id, record, plan_pair(mapping, local, record, link.fingerprints if link else None))
        )
    carried = carry_out(hub, connection_id, mapping, planned, connector)
    carried.linked = report.linked
    return carried


@dataclass(frozen=True)
class Planned:
    """A local record, the remote record it is (or is about to be) linked to, and what to do about them."""

    local_id: str
    record: RemoteRecord
    plan: RecordPlan


def plan_pair(
    mapping: Mapping, local: dict[str, Any], record: RemoteRecord, fingerprints: dict[str, str] | None
) -> RecordPlan:
    """The plan for a local record and its remote record, with both sides' change times."""
    return plan_record(
        mapping,
        local,
        record.properties,
        fingerprints,
        hub_changed_at=local.get("updated_at"),
        remote_changed_at=record.updated_at,
    )


def pullable_changes(object_type: str, plan: RecordPlan) -> dict[str, Any]:
    """The local fields of a plan that the sync may set through the services."""
    allowed = PULLABLE.get(object_type, set())
    return {name: value for name, value in plan.apply.items() if name in allowed}


def carry_out(
    hub: Runtime,
    connection_id: str,
    mapping: Mapping,
    planned: list[Planned],
    connector: Connector | None = None,
) -> SyncReport:
    """Do what the plans say: apply through the services, push in vendor batches, then link and hold.

    Every pair ends linked with the plan's fingerprints, except what did not happen: a record whose local
    change was refused is left as it was (the next sync or reconcile tries again), and the fields of a push
    the vendor refused keep their last fingerprints (so they are still seen as changed).
    """
    report = SyncReport()
    now = hub.clock.now()
    object_type, remote_object = mapping.object_type, mapping.remote_object
    to_push: list[WriteItem] = []
    done: list[Planned] = []
    for one in planned:
        changes = pullable_changes(object_type, one.plan)
        if changes:
            try:
                update_customer(UpdateCustomer(one.local_id, changes), hub.uow(actor(connection_id)))
            except AbohubError as error:
                report.errors.append(f"{one.local_id}: the hub refused {sorted(changes)}: {error}")
                continue
            report.pulled += 1
        if one.plan.push:
            to_push.append(
                WriteItem(
                    local_id=one.local_id,
                    properties=one.plan.push,
                    remote_id=one.record.id,
                    idempotency_key=f"{connection_id}:{one.local_id}:pull:{one.record.updated_at}",
                )
            )
        elif not changes:
            report.unchanged += 1
        report.conflicts += len(one.plan.conflicts)
        done.append(one)
    refused: set[str] = set()
    unanswered: list[str] = []
    if to_push:
        connector = connector or open_connector(hub.uow(actor(connection_id)), connection_id)
        results = _write(hub, connection_id, connector, remote_object, to_push)
        refused = {local_id for local_id, result in results.items() if not result.ok}
        unanswered = [local_id for local_id, result in results.items() if result.unanswered]
        report.pushed += len(results) - len(refused)
        report.errors += [f"{local_id}: {results[local_id].error}" for local_id in sorted(refused)]
    settled = []
    for one in done:
        fingerprints = one.plan.fingerprints
        if one.local_id in refused:
            fingerprints = {k: v for k, v in fingerprints.items() if k not in one.plan.push}
        settled.append((one.local_id, one.record.id, fingerprints))
    with hub.session_factory() as session, session.begin():
        save_links(session, connection_id, object_type, remote_object, settled, now, pushed=False)
        _late_writes(hub, session, connection_id, object_type, unanswered, now)
        in_sync = [one.local_id for one in done if one.local_id not in refused]
        settle_dead_letters(session, connection_id, object_type, in_sync, now)
        for one in done:
            for conflict in one.plan.conflicts:
                _hold_conflict(
                    session, connection_id, object_type, one.local_id, one.record.id, conflict, now
                )
    return report


def _match(
    session: Session, connection_id: str, mapping: Mapping, records: list[RemoteRecord]
) -> dict[str, str]:
    """Link unlinked remote records to local ones with the same match keys (e.g. email)."""
    if not records or mapping.object_type != "customer":
        return {}
    linked_locals = set(
        session.scalars(
            select(Link.local_id).where(Link.connection_id == connection_id, Link.object_type == "customer")
        )
    )
    wanted: dict[tuple[str, str], str] = {}
    for record in records:
        for key, fingerprint in remote_match_keys(mapping, record.properties).items():
            wanted.setdefault((key, fingerprint), record.id)
    if not wanted:
        return {}
    matched: dict[str, str] = {}
    emails = {str(r.properties.get("email", "")).strip().lower() for r in records} - {""}
    candidates = (
        session.scalars(select(Customer).where(func.lower(Customer.email).in_(emails))) if emails else []
    )
    for customer in candidates:
        if customer.id in linked_locals:
            continue
        for key, fingerprint in local_match_keys(
            mapping, {"email": customer.email, "vat_number": customer.vat_number, "id": customer.id}
        ).items():
            remote_id = wanted.get((key, fingerprint))
            if remote_id and remote_id not in matched:
                matched[remote_id] = customer.id
                break
    return matched


def _hold_conflict(
    session: Session,
    connection_id: str,
    object_type: str,
    local_id: str,
    remote_id: str,
    conflict: Any,
    now: datetime,
) -> None:
    """One open conflict per record and field: a newer clash updates it instead of adding another."""
    held = session.scalar(
        select(Conflict).where(
            Conflict.connection_id == connection_id,
            Conflict.object_type == object_type,
            Conflict.local_id == local_id,
            Conflict.field == conflict.field,
            Conflict.status == "open",
        )
    )
    if held is None:
        held = Conflict(
            id=new_id("cf"),
            connection_id=connection_id,
            object_type=object_type,
            local_id=local_id,
            field=conflict.field,
            status="open",
            created_at=now,
        )
        session.add(held)
    held.remote_id = remote_id
    held.remote_field = ",".join(conflict.remote_fields)
    held.hub_value = jsonable(conflict.hub_value)  # {local field: value}
    held.remote_value = jsonable(conflict.remote_value)
    held.hub_changed_at = conflict.hub_changed_at
    held.remote_changed_at = conflict.remote_changed_at


# --- records on one side only --------------------------------------------------------------------


def create_remote(
    hub: Runtime, connection_id: str, mapping: Mapping, local_ids: list[str], connector: Connector
) -> SyncReport:
    """Create records that have no remote counterpart (and no match by key), then link them.

    The connector upserts on its external-id key (the hub's id), so a retried or repeated create lands on
    the record made the first time instead of a duplicate.
    """
    report = SyncReport()
    now = hub.clock.now()
    with hub.session_factory() as session:
        values = local_values(session, mapping.object_type, local_ids)
    plans = {local_id: plan_record(mapping, local, None, None) for local_id, local in values.items()}
    items = [
        WriteItem(
            local_id=local_id, properties=plan.push, idempotency_key=f"{connection_id}:{local_id}:create"
        )
        for local_id, plan in plans.items()
    ]
    results = _write(hub, connection_id, connector, mapping.remote_object, items)
    created = []
    for item in items:
        result = results[item.local_id]
        if result.ok and result.remote_id:
            created.append((item.local_id, result.remote_id, plans[item.local_id].fingerprints))
        else:
            report.errors.append(f"{item.local_id}: {result.error or 'the vendor gave no result'}")
    with hub.session_factory() as session, session.begin():
        save_links(
            session, connection_id, mapping.object_type, mapping.remote_object, created, now, pushed=True
        )
        settle_dead_letters(session, connection_id, mapping.object_type, [i for i, _, _ in created], now)
    report.pushed = len(created)
    return report


def settle_dead_letters(
    session: Session, connection_id: str, object_type: str, local_ids: list[str], now: datetime
) -> None:
    """Records now in sync with the connection settle their earlier dead letters."""
    if local_ids:
        session.execute(
            update(DeadLetter)
            .where(
                DeadLetter.connection_id == connection_id,
                DeadLetter.object_type == object_type,
                one_of(session, DeadLetter.local_id, local_ids),
                DeadLetter.resolved_at.is_(None),
            )
            .values(resolved_at=now)
            .execution_options(synchronize_session=False)
        )


def forget_remote_records(
    hub: Runtime, connection_id: str, remote_object: str, remote_ids: list[str], *, found_by: str
) -> list[str]:
    """Remote records are gone: unlink them, keep the hub's records, and say so in the audit trail.

    The hub is the trusted store: a customer deleted in the CRM still exists and pays, so only the link
    and its fingerprints go. The record is created again remotely at its next change (a push finds no
    link) or at the next reconcile, which first looks for a remote record with the same key. The event
    names the connection as its aggregate, so recording it does not itself queue a push. Returns the
    local ids that were unlinked.
    """
    if not remote_ids:
        return []
    with hub.uow(actor(connection_id)) as uow:
        links = list(
            uow.session.scalars(
                select(Link)
                .where(
                    Link.connection_id == connection_id,
                    Link.remote_object == remote_object,
                    Link.remote_id.in_(remote_ids),
                )
                .order_by(Link.local_id)
                .with_for_update()
            )
        )
        for link in links:
            uow.session.delete(link)
            uow.record(
                "sync.remote_deleted",
                "connection",
                connection_id,
                customer_id=link.local_id if link.object_type == "customer" else None,
                data={
                    "object_type": link.object_type,
                    "local_id": link.local_id,
                    "remote_object": remote_object,
                    "remote_id": link.remote_id,
                    "found_by": found_by,
                },
            )
        uow.commit()
        return [link.local_id for link in links]
