"""Reading the store back in integration tests (the writes all go through the service layer)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from hub.bootstrap import Hub
from hub.services.billing import BillingReport, RunBilling, run_billing
from hub.store.models import Event, Invoice, OutboxMessage, Payment, PaymentAttempt, Subscription


def at(text: str) -> datetime:
    """``"2026-02-15 09:00"`` as UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def bill(hub: Hub, when: str | datetime, collect: bool = True) -> BillingReport:
    """Move the hub's clock to ``when`` and run billing there."""
    moment = at(when) if isinstance(when, str) else when
    hub.clock.set(moment)  # type: ignore[attr-defined]
    return run_billing(RunBilling(at=moment, collect=collect), hub.uow())


def subscription(hub: Hub, subscription_id: str) -> Subscription:
    with hub.session_factory() as session:
        found = session.get(Subscription, subscription_id)
        assert found is not None
        return found


def invoices(hub: Hub, subscription_id: str | None = None, customer_id: str | None = None) -> list[Invoice]:
    """Invoices with their lines, oldest number first (drafts last)."""
    query = select(Invoice).options(selectinload(Invoice.lines))
    if subscription_id is not None:
        query = query.where(Invoice.subscription_id == subscription_id)
    if customer_id is not None:
        query = query.where(Invoice.customer_id == customer_id)
    with hub.session_factory() as session:
        found = list(session.scalars(query.order_by(Invoice.sequence.is_(None), Invoice.sequence)))
        session.expunge_all()
        return found


def attempts(hub: Hub, invoice_id: str) -> list[PaymentAttempt]:
    with hub.session_factory() as session:
        found = list(
            session.scalars(
                select(PaymentAttempt)
                .where(PaymentAttempt.invoice_id == invoice_id)
                .order_by(PaymentAttempt.attempt_number)
            )
        )
        session.expunge_all()
        return found


def payments(hub: Hub, invoice_id: str) -> list[Payment]:
    with hub.session_factory() as session:
        found = list(
            session.scalars(
                select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.created_at)
            )
        )
        session.expunge_all()
        return found


@dataclass(frozen=True)
class Seen:
    type: str
    occurred_at: datetime
    data: dict[str, Any]


def events(hub: Hub, aggregate_id: str | None = None, prefix: str = "") -> list[Seen]:
    query = select(Event).order_by(Event.id)
    if aggregate_id is not None:
        query = query.where(Event.aggregate_id == aggregate_id)
    with hub.session_factory() as session:
        return [
            Seen(e.type, e.occurred_at, e.data) for e in session.scalars(query) if e.type.startswith(prefix)
        ]


def event_types(hub: Hub, aggregate_id: str | None = None, prefix: str = "") -> list[str]:
    return [e.type for e in events(hub, aggregate_id, prefix)]


def counts(hub: Hub) -> dict[str, int]:
    """How many rows the tables that a change writes to hold."""
    with hub.session_factory() as session:
        return {
            "events": session.scalar(select(func.count()).select_from(Event)) or 0,
            "outbox": session.scalar(select(func.count()).select_from(OutboxMessage)) or 0,
            "invoices": session.scalar(select(func.count()).select_from(Invoice)) or 0,
            "subscriptions": session.scalar(select(func.count()).select_from(Subscription)) or 0,
        }


def lines_of(invoice: Invoice) -> list[tuple[str, int, int, int, int]]:
    """(kind, amount, discount, vat, total) per line, in invoice order."""
    return [
        (line.kind, line.amount, line.discount_amount, line.vat_amount, line.total) for line in invoice.lines
    ]


def sums(invoice: Invoice) -> tuple[int, int, int, int]:
    return (invoice.subtotal, invoice.discount, invoice.vat, invoice.total)
