"""The subscription store: typed SQLAlchemy 2.x models.

Money is integer minor units beside a currency column; times are UTC
(:class:`UTCDateTime`); enumerations are stored by value. Constraints are named
(``naming_convention``) so migrations stay stable on PostgreSQL and SQLite.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hub.store.types import Currency, Percent, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER (the rowid alias, so it autoincrements) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), Decimal: Percent(), dict[str, Any]: JSON()}


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), index=True)
    country: Mapped[str] = mapped_column(String(2))
    vat_number: Mapped[str | None] = mapped_column(String(32), index=True)
    currency: Mapped[str] = mapped_column(Currency())
    locale: Mapped[str] = mapped_column(String(16))
    address_line1: Mapped[str | None] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # Derived revenue state, kept by the service layer under a row lock.
    mrr: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_state: Mapped[str] = mapped_column(String(16), default="none")
    first_active_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Plan(Base):
    __tablename__ = "plans"
    __table_args__ = (
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("interval_count >= 1", name="interval_count_positive"),
        CheckConstraint("interval IN ('month', 'quarter', 'year')", name="interval_known"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Currency())
    interval: Mapped[str] = mapped_column(String(8))
    interval_count: Mapped[int] = mapped_column(Integer, default=1)
    trial_days: Mapped[int] = mapped_column(Integer, default=0)
    vat_rate: Mapped[Decimal]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    product: Mapped[Product] = relationship(lazy="raise")


class Coupon(Base):
    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint("(percent_off IS NULL) <> (amount_off IS NULL)", name="one_kind_of_discount"),
        CheckConstraint("duration IN ('once', 'repeating', 'forever')", name="duration_known"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    percent_off: Mapped[Decimal | None]
    amount_off: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(Currency())
    duration: Mapped[str] = mapped_column(String(16))
    duration_periods: Mapped[int | None] = mapped_column(Integer)
    max_redemptions: Mapped[int | None] = mapped_column(Integer)
    times_redeemed: Mapped[int] = mapped_column(Integer, default=0)
    redeem_by: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        Index("ix_subscriptions_next_action_at", "next_action_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    currency: Mapped[str] = mapped_column(Currency())
    started_at: Mapped[datetime]
    trial_end: Mapped[datetime | None]
    billing_anchor: Mapped[datetime]
    current_period_start: Mapped[datetime | None]
    current_period_end: Mapped[datetime | None]
    # When the billing run next has something to do here (renew, end trial,
    # resume, apply a scheduled change); NULL when nothing is scheduled.
    next_action_at: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    pause_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    pause_resume_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    resume_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(32))
    cancel_feedback: Mapped[str | None] = mapped_column(Text)
    coupon_id: Mapped[str | None] = mapped_column(ForeignKey("coupons.id"))
    coupon_periods_left: Mapped[int | None] = mapped_column(Integer)
    mrr: Mapped[int] = mapped_column(BigInteger, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class NumberSequence(Base):
    """Gap-free counters for invoice and credit-note numbers (one row per series)."""

    __tablename__ = "number_sequences"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger, default=0)


class PendingItem(Base):
    """A charge or credit waiting for the customer's next invoice (e.g. a proration)."""

    __tablename__ = "pending_items"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    description: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Currency())
    vat_rate: Mapped[Decimal]
    plan_id: Mapped[str | None] = mapped_column(String(40))
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        # One invoice per subscription, reason and period: a second billing run
        # (or a concurrent one) cannot bill the same period twice.
        UniqueConstraint("subscription_id", "billing_reason", "period_start"),
        Index("ix_invoices_next_payment_attempt_at", "next_payment_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    number: Mapped[str | None] = mapped_column(String(32), unique=True)
    sequence: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    billing_reason: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(Currency())
    subtotal: Mapped[int] = mapped_column(BigInteger)
    discount: Mapped[int] = mapped_column(BigInteger)
    vat: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_credited: Mapped[int] = mapped_column(BigInteger, default=0)
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    issued_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime | None]
    next_payment_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    lines: Mapped[list[InvoiceLine]] = relationship(
        order_by="InvoiceLine.position", lazy="raise", cascade="all, delete-orphan"
    )

    @property
    def amount_due(self) -> int:
        return max(0, self.total - self.amount_paid - self.amount_credited)


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    position: Mapped[int] = mapped_column(SmallInteger)
    description: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    discount_amount: Mapped[int] = mapped_column(BigInteger)
    net_amount: Mapped[int] = mapped_column(BigInteger)
    vat_rate: Mapped[Decimal]
    vat_amount: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    plan_id: Mapped[str | None] = mapped_column(String(40))
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]


class CreditNote(Base):
    __tablename__ = "credit_notes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    sequence: Mapped[int] = mapped_column(BigInteger, unique=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    currency: Mapped[str] = mapped_column(Currency())
    reason: Mapped[str] = mapped_column(String(32))
    memo: Mapped[str | None] = mapped_column(Text)
    net_amount: Mapped[int] = mapped_column(BigInteger)
    vat: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime]

    lines: Mapped[list[CreditNoteLine]] = relationship(
        order_by="CreditNoteLine.position", lazy="raise", cascade="all, delete-orphan"
    )


class CreditNoteLine(Base):
    __tablename__ = "credit_note_lines"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    credit_note_id: Mapped[str] = mapped_column(ForeignKey("credit_notes.id"), index=True)
    invoice_line_id: Mapped[str | None] = mapped_column(ForeignKey("invoice_lines.id"))
    position: Mapped[int] = mapped_column(SmallInteger)
    description: Mapped[str] = mapped_column(String(300))
    net_amount: Mapped[int] = mapped_column(BigInteger)
    vat_rate: Mapped[Decimal]
    vat_amount: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)


class PaymentAttempt(Base):
    """One try to collect an invoice through the payment gateway."""

    __tablename__ = "payment_attempts"
    __table_args__ = (UniqueConstraint("invoice_id", "attempt_number"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    attempt_number: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Currency())
    status: Mapped[str] = mapped_column(String(16))
    gateway: Mapped[str] = mapped_column(String(32))
    gateway_reference: Mapped[str | None] = mapped_column(String(100))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    attempted_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime | None]


class Payment(Base):
    """Money that moved: a collected payment (positive) or a refund (negative)."""

    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    credit_note_id: Mapped[str | None] = mapped_column(ForeignKey("credit_notes.id"))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Currency())
    method: Mapped[str] = mapped_column(String(32))
    gateway_reference: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]


class Event(Base):
    """The audit trail and domain-event history: who did what, when, before and after."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_aggregate", "aggregate_type", "aggregate_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    aggregate_type: Mapped[str] = mapped_column(String(32))
    aggregate_id: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[str | None] = mapped_column(String(40), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    recorded_at: Mapped[datetime]
    data: Mapped[dict[str, Any]]


class OutboxMessage(Base):
    """A committed change waiting to be relayed to the job queue (written with its event)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    topic: Mapped[str] = mapped_column(String(64))
    aggregate_type: Mapped[str] = mapped_column(String(32))
    aggregate_id: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    relayed_at: Mapped[datetime | None] = mapped_column(index=True)


class MrrMovement(Base):
    """One change to a customer's MRR or revenue state, classified when it happened."""

    __tablename__ = "mrr_movements"
    __table_args__ = (Index("ix_mrr_movements_currency_occurred", "currency", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    occurred_at: Mapped[datetime]
    customer_id: Mapped[str] = mapped_column(String(40), index=True)
    subscription_id: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(Currency())
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    customer_mrr_after: Mapped[int] = mapped_column(BigInteger)
    active_delta: Mapped[int] = mapped_column(SmallInteger)
    churn_delta: Mapped[int] = mapped_column(SmallInteger)
    cohort: Mapped[date] = mapped_column(Date)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class IdempotencyRecord(Base):
    """The first response to a POST with an ``Idempotency-Key``, replayed for the same key."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    fingerprint: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)
    completed_at: Mapped[datetime | None]


# --- the sync engine ----------------------------------------------------------------------------


class Connection(Base):
    """A configured instance of a connector; its config (with credentials) is encrypted at rest."""

    __tablename__ = "connections"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    config_encrypted: Mapped[str] = mapped_column(Text)
    last_synced_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Mapping(Base):
    """How one hub object type maps to one remote object of a connection (see ``mappings.schema``)."""

    __tablename__ = "mappings"
    __table_args__ = (UniqueConstraint("connection_id", "object_type"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"), index=True)
    object_type: Mapped[str] = mapped_column(String(32))
    definition: Mapped[dict[str, Any]]
    version: Mapped[int] = mapped_column(default=1, server_default="1")  # grows by one with each saved change
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Link(Base):
    """Which local record is which remote record, and a fingerprint per field of what was last synced."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("connection_id", "object_type", "local_id"),
        UniqueConstraint("connection_id", "remote_object", "remote_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"))
    object_type: Mapped[str] = mapped_column(String(32))
    local_id: Mapped[str] = mapped_column(String(40))
    remote_object: Mapped[str] = mapped_column(String(64))
    remote_id: Mapped[str] = mapped_column(String(100))
    remote_version: Mapped[str | None] = mapped_column(String(100))
    fingerprints: Mapped[dict[str, Any]]
    # "<remote object>:<remote id>" this record was last associated with (e.g. a deal with its contact).
    associated_to: Mapped[str | None] = mapped_column(String(200))
    # A write of this record went unanswered (see connectors.base.WriteResult.unanswered): until then
    # the vendor may still apply it, so the record's next write waits (it could otherwise be overwritten).
    late_write_until: Mapped[datetime | None]
    last_pushed_at: Mapped[datetime | None]
    last_pulled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SyncState(Base):
    """A local record with changes not yet pushed to a connection: durable, whatever the queue loses."""

    __tablename__ = "sync_states"
    __table_args__ = (
        UniqueConstraint("connection_id", "object_type", "local_id"),
        Index("ix_sync_states_next_attempt_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"))
    object_type: Mapped[str] = mapped_column(String(32))
    local_id: Mapped[str] = mapped_column(String(40))
    wanted_event_id: Mapped[int] = mapped_column(BigInteger)
    dirty_since: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)


class SyncCursor(Base):
    """Where polling a connection's object type got to."""

    __tablename__ = "sync_cursors"

    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"), primary_key=True)
    remote_object: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]


class Conflict(Base):
    """Both sides changed one field differently under a ``manual`` policy: held for a person."""

    __tablename__ = "conflicts"
    __table_args__ = (Index("ix_conflicts_open", "connection_id", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"))
    object_type: Mapped[str] = mapped_column(String(32))
    local_id: Mapped[str] = mapped_column(String(40))
    remote_id: Mapped[str | None] = mapped_column(String(100))
    field: Mapped[str] = mapped_column(String(64))
    remote_field: Mapped[str] = mapped_column(String(64))
    hub_value: Mapped[dict[str, Any]]
    remote_value: Mapped[dict[str, Any]]
    hub_changed_at: Mapped[datetime | None]
    remote_changed_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="open")
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolved_value: Mapped[dict[str, Any] | None]
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class DeadLetter(Base):
    """Work that failed for good, with the scrubbed request and response, replayable."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_open", "connection_id", "resolved_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"))
    object_type: Mapped[str] = mapped_column(String(32))
    local_id: Mapped[str | None] = mapped_column(String(40))
    remote_id: Mapped[str | None] = mapped_column(String(100))
    operation: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    request: Mapped[dict[str, Any] | None]
    response: Mapped[dict[str, Any] | None]
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    replayed_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]


class WebhookReceipt(Base):
    """One verified webhook event, stored once per vendor event id, processed by a job."""

    __tablename__ = "webhook_receipts"
    __table_args__ = (
        UniqueConstraint("connection_id", "event_id"),
        Index("ix_webhook_receipts_pending", "processed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"))
    event_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class JobRun(Base):
    """A queued job of the embedded worker (rq keeps its own in Redis)."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_due", "status", "run_at"),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # deterministic: one job per purpose
    function: Mapped[str] = mapped_column(String(100))
    args: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    run_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# --- the admin's staff users ----------------------------------------------------------------------


class StaffUser(Base):
    """A person who signs in to the admin; the password is kept only as an argon2 hash."""

    __tablename__ = "staff_users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'viewer')", name="role"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(16))
    disabled_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StaffSession(Base):
    """A signed-in browser; the cookie holds a random token, this row only its SHA-256."""

    __tablename__ = "staff_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("staff_users.id"), index=True)
    client_address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class LoginAttempt(Base):
    """A login attempt not (yet) known to have succeeded: what login throttling counts."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_pair", "username_hash", "client_address", "attempted_at"),
        Index("ix_login_attempts_address", "client_address", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # SHA-256 of the name typed: a password typed into the name field is not kept in clear.
    username_hash: Mapped[str] = mapped_column(String(64))
    client_address: Mapped[str] = mapped_column(String(64))
    attempted_at: Mapped[datetime] = mapped_column(index=True)
