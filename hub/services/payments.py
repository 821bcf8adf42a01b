"""Collecting invoices through the payment gateway, dunning, manual payments, refunds.

A collection attempt is claimed in one transaction (a ``pending`` attempt row,
unique per invoice and attempt number), the gateway is called outside any
transaction with the attempt's id as idempotency key, and the outcome is
recorded in a second transaction. A crash in between leaves a pending attempt
that the next collection run sends again with the same key, so the customer is
never charged twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from connectors.base import ChargeRequest, RefundRequest
from hub.domain.dunning import next_retry_at
from hub.domain.errors import InvalidRequest, NotFound, StateConflict
from hub.domain.ids import new_id
from hub.domain.invoicing import InvoiceStatus, invoice_transition
from hub.domain.lifecycle import Action, Status, transition
from hub.services import subscriptions
from hub.services.invoicing import issue
from hub.services.uow import UnitOfWork
from hub.store.models import CreditNote, Customer, Invoice, Payment, PaymentAttempt

# An attempt still pending after this long is assumed lost (the process died
# between claiming and recording it) and is sent again with the same key.
STALE_ATTEMPT = timedelta(minutes=10)


@dataclass
class CollectionReport:
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled_subscriptions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PayInvoice:
    invoice_id: str


@dataclass(frozen=True)
class RecordPayment:
    """A payment received outside the gateway (e.g. a bank transfer)."""

    invoice_id: str
    amount: int
    method: str = "bank_transfer"
    reference: str | None = None


def collect_due(uow: UnitOfWork, invoice_ids: list[str] | None = None) -> CollectionReport:
    """Attempt every open invoice whose next attempt is due (or just ``invoice_ids``)."""
    with uow:
        now = uow.now
        query = select(Invoice.id).where(
            Invoice.status == InvoiceStatus.OPEN.value, Invoice.next_payment_attempt_at <= now
        )
        if invoice_ids is not None:
            query = query.where(Invoice.id.in_(invoice_ids))
        due = list(uow.session.scalars(query.order_by(Invoice.next_payment_attempt_at, Invoice.id)))
        stale = list(
            uow.session.scalars(
                select(PaymentAttempt.id).where(
                    PaymentAttempt.status == "pending",
                    PaymentAttempt.attempted_at <= now - STALE_ATTEMPT,
                )
            )
        )
    report = CollectionReport()
    for attempt_id in stale:
        _send(uow, attempt_id, report)
    for invoice_id in due:
        attempt_id = _claim(uow, invoice_id)
        if attempt_id is not None:
            _send(uow, attempt_id, report)
    return report


def pay_invoice(cmd: PayInvoice, uow: UnitOfWork) -> CollectionReport:
    """Try to collect ``invoice_id`` now, whatever its schedule says."""
    report = CollectionReport()
    attempt_id = _claim(uow, cmd.invoice_id, force=True)
    if attempt_id is not None:
        _send(uow, attempt_id, report)
    return report


def _claim(uow: UnitOfWork, invoice_id: str, force: bool = False) -> str | None:
    with uow:
        invoice = uow.session.get(Invoice, invoice_id, with_for_update=True)
        if invoice is None:
            raise NotFound(f"no invoice {invoice_id}")
        if invoice.status != InvoiceStatus.OPEN.value:
            if force:
                raise StateConflict(f"cannot collect an invoice that is {invoice.status}")
            return None
        due_now = invoice.next_payment_attempt_at is not None and invoice.next_payment_attempt_at <= uow.now
        if not (force or due_now) or invoice.amount_due == 0:
            return None
        invoice.attempt_count += 1
        invoice.next_payment_attempt_at = None
        attempt = PaymentAttempt(
            id=new_id("pa"),
            invoice_id=invoice.id,
            attempt_number=invoice.attempt_count,
            amount=invoice.amount_due,
            currency=invoice.currency,
            status="pending",
            gateway=uow.gateway.name,
            attempted_at=uow.now,
        )
        uow.session.add(attempt)
        uow.commit()
        return attempt.id


def _send(uow: UnitOfWork, attempt_id: str, report: CollectionReport) -> None:
    with uow:
        attempt = uow.session.get(PaymentAttempt, attempt_id)
        assert attempt is not None
        invoice = uow.session.get(Invoice, attempt.invoice_id)
        assert invoice is not None
        customer = uow.session.get(Customer, invoice.customer_id)
        assert customer is not None
        request = ChargeRequest(
            idempotency_key=attempt.id,
            customer_id=customer.id,
            invoice_id=invoice.id,
            amount=attempt.amount,
            currency=attempt.currency,
            attempt_number=attempt.attempt_number,
            payment_method=(customer.meta or {}).get("payment_method"),
            description=f"Invoice {invoice.number}",
        )
    result = uow.gateway.charge(request)
    report.attempted += 1
    if result.succeeded:
        report.succeeded += 1
    else:
        report.failed += 1
    canceled = _record_outcome(
        uow, attempt_id, result.succeeded, result.reference, result.failure_code, result.failure_message
    )
    if canceled:
        report.canceled_subscriptions.append(canceled)


def _record_outcome(
    uow: UnitOfWork,
    attempt_id: str,
    succeeded: bool,
    reference: str | None,
    failure_code: str | None,
    failure_message: str | None,
) -> str | None:
    """Write what the gateway said; returns a subscription canceled by dunning, if any."""
    with uow:
        attempt = uow.session.get(PaymentAttempt, attempt_id, with_for_update=True)
        assert attempt is not None
        if attempt.status != "pending":
            return None  # another process recorded it already
        invoice = uow.session.get(Invoice, attempt.invoice_id, with_for_update=True)
        assert invoice is not None
        now = uow.now
        attempt.gateway_reference = reference
        canceled = None
        if succeeded:
            attempt.status = "succeeded"
            _settle(uow, invoice, attempt.amount, "card", reference, now)
        else:
            attempt.status = "failed"
            attempt.failure_code = failure_code
            attempt.failure_message = failure_message
            canceled = _dunning_step(uow, invoice, attempt, now)
        uow.commit()
        return canceled


def _settle(
    uow: UnitOfWork, invoice: Invoice, amount: int, method: str, reference: str | None, now: datetime
) -> None:
    payment = Payment(
        id=new_id("py"),
        invoice_id=invoice.id,
        customer_id=invoice.customer_id,
        kind="payment",
        amount=amount,
        currency=invoice.currency,
        method=method,
        gateway_reference=reference,
        created_at=now,
    )
    uow.session.add(payment)
    invoice.amount_paid += amount
    invoice.updated_at = now
    uow.record(
        "payment.succeeded",
        "payment",
        payment.id,
        customer_id=invoice.customer_id,
        data={"invoice_id": invoice.id, "amount": amount, "currency": invoice.currency, "method": method},
    )
    if invoice.amount_due == 0:
        mark_paid(uow, invoice)


def mark_paid(uow: UnitOfWork, invoice: Invoice, **context: str) -> None:
    """Nothing is left to pay (by payment or credit): the invoice is paid, its subscription recovers."""
    before = invoice.status
    invoice.status = invoice_transition(invoice.status, "pay").value
    invoice.paid_at = uow.now
    invoice.next_payment_attempt_at = None
    uow.record(
        "invoice.paid",
        "invoice",
        invoice.id,
        customer_id=invoice.customer_id,
        data={
            "before": {"status": before},
            "after": {"status": invoice.status},
            "number": invoice.number,
            "total": invoice.total,
            **context,
        },
    )
    recover_subscription(uow, invoice)


def recover_subscription(uow: UnitOfWork, invoice: Invoice) -> None:
    """A past-due subscription whose overdue invoices are all settled becomes active again."""
    if invoice.subscription_id is None:
        return
    loaded = subscriptions.load(uow, invoice.subscription_id)
    sub = loaded.subscription
    if sub.status != Status.PAST_DUE.value:
        return
    still_open = uow.session.scalar(
        select(Invoice.id)
        .where(
            Invoice.subscription_id == sub.id,
            Invoice.status == InvoiceStatus.OPEN.value,
            Invoice.attempt_count > 0,
            Invoice.id != invoice.id,
        )
        .limit(1)
    )
    if still_open is None:
        sub.status = transition(sub.status, Action.RECOVER).value
        subscriptions.record_change(
            uow, loaded, "subscription.recovered", uow.now, extra={"invoice_id": invoice.id}
        )


def _dunning_step(uow: UnitOfWork, invoice: Invoice, attempt: PaymentAttempt, now: datetime) -> str | None:
    if invoice.first_failed_at is None:
        invoice.first_failed_at = now
    retry_at = next_retry_at(invoice.first_failed_at, invoice.attempt_count, uow.settings.dunning_retry_days)
    invoice.next_payment_attempt_at = retry_at
    invoice.updated_at = now
    attempt.next_attempt_at = retry_at
    uow.record(
        "invoice.payment_failed",
        "invoice",
        invoice.id,
        customer_id=invoice.customer_id,
        data={
            "attempt": attempt.attempt_number,
            "failure_code": attempt.failure_code,
            "next_attempt_at": retry_at,
        },
    )
    if invoice.subscription_id is None:
        return None
    loaded = subscriptions.load(uow, invoice.subscription_id)
    sub = loaded.subscription
    if sub.status == Status.ACTIVE.value:
        sub.status = transition(sub.status, Action.FAIL_PAYMENT).value
        subscriptions.record_change(
            uow, loaded, "subscription.past_due", now, extra={"invoice_id": invoice.id}
        )
    if retry_at is not None or uow.settings.dunning_final_action != "cancel":
        return None
    invoice.status = invoice_transition(invoice.status, "mark_uncollectible").value
    uow.record(
        "invoice.marked_uncollectible",
        "invoice",
        invoice.id,
        customer_id=invoice.customer_id,
        data={
            "before": {"status": "open"},
            "after": {"status": invoice.status},
            "reason": "retries exhausted",
        },
    )
    if loaded.subscription.status == Status.CANCELED.value:
        return None
    loaded.subscription.cancel_reason = "payment_failed"
    loaded.subscription.cancel_feedback = None
    final = subscriptions.apply_cancel(uow, loaded, now)
    if final is not None:
        issue(uow, [final])
    return loaded.subscription.id


def record_payment(cmd: RecordPayment, uow: UnitOfWork) -> Invoice:
    """Register money received outside the gateway against an open invoice."""
    with uow:
        invoice = uow.session.get(Invoice, cmd.invoice_id, with_for_update=True)
        if invoice is None:
            raise NotFound(f"no invoice {cmd.invoice_id}")
        if invoice.status not in (InvoiceStatus.OPEN.value, InvoiceStatus.UNCOLLECTIBLE.value):
            raise StateConflict(f"cannot pay an invoice that is {invoice.status}")
        if not 0 < cmd.amount <= invoice.amount_due:
            raise InvalidRequest(
                "amount out of range",
                fields={"amount": [f"must be between 1 and {invoice.amount_due} (the amount due)"]},
            )
        _settle(uow, invoice, cmd.amount, cmd.method, cmd.reference, uow.now)
        uow.commit()
        invoice_id = invoice.id
    with uow:
        found = uow.session.get(Invoice, invoice_id)
        assert found is not None
        uow.session.expunge(found)
        return found


def refund_payment(uow: UnitOfWork, credit_note_id: str, amount: int) -> int:
    """Refund up to ``amount`` of what was paid on the credit note's invoice; returns the refunded sum."""
    with uow:
        note = uow.session.get(CreditNote, credit_note_id)
        assert note is not None
        payments = list(
            uow.session.scalars(
                select(Payment)
                .where(
                    Payment.invoice_id == note.invoice_id,
                    or_(Payment.kind == "payment", Payment.kind == "refund"),
                )
                .order_by(Payment.created_at)
            )
        )
        refundable = sum(p.amount for p in payments)
        # Only a charge the gateway made can be refunded through it; a bank transfer's
        # reference is not a gateway reference.
        charged = set(
            uow.session.scalars(
                select(PaymentAttempt.gateway_reference).where(
                    PaymentAttempt.invoice_id == note.invoice_id, PaymentAttempt.status == "succeeded"
                )
            )
        )
        charge = next(
            (
                p
                for p in payments
                if p.kind == "payment" and p.gateway_reference and p.gateway_reference in charged
            ),
            None,
        )
        amount = min(amount, refundable)
        if amount <= 0:
            return 0
        request = RefundRequest(
            idempotency_key=f"refund-{credit_note_id}",
            payment_reference=charge.gateway_reference if charge and charge.gateway_reference else "",
            amount=amount,
            currency=note.currency,
        )
    result = uow.gateway.refund(request) if request.payment_reference else None
    if result is not None and not result.succeeded:
        raise StateConflict(
            f"the credit note was issued but the gateway refused the refund: {result.failure_message}"
        )
    with uow:
        note = uow.session.get(CreditNote, credit_note_id, with_for_update=True)
        assert note is not None
        invoice = uow.session.get(Invoice, note.invoice_id)
        assert invoice is not None
        refund = Payment(
            id=new_id("py"),
            invoice_id=invoice.id,
            customer_id=invoice.customer_id,
            credit_note_id=note.id,
            kind="refund",
            amount=-amount,
            currency=note.currency,
            method=uow.gateway.name if result else "manual",
            gateway_reference=result.reference if result else None,
            created_at=uow.now,
        )
        uow.session.add(refund)
        note.refunded = amount
        uow.record(
            "payment.refunded",
            "payment",
            refund.id,
            customer_id=invoice.customer_id,
            data={
                "invoice_id": invoice.id,
                "credit_note_id": note.id,
                "amount": amount,
                "currency": note.currency,
            },
        )
        uow.commit()
    return amount
