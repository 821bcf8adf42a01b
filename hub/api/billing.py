"""/api/v1/invoices, /api/v1/credit-notes, /api/v1/payments"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hub.api.context import fetch, hub, uow
from hub.api.pagination import filtered, page
from hub.api.schemas import (
    AttemptSchema,
    CollectionSchema,
    CreateInvoiceSchema,
    CreditNoteFilter,
    CreditNoteSchema,
    EmptySchema,
    InvoiceFilter,
    InvoiceSchema,
    InvoiceSummarySchema,
    PaymentFilter,
    PaymentSchema,
    page_of,
)
from hub.domain.errors import NotFound
from hub.services import credit_notes, invoicing, payments
from hub.store.models import CreditNote, Invoice, Payment, PaymentAttempt

blp = Blueprint("billing", __name__, url_prefix="/api/v1", description="Invoices, credit notes and payments")


@blp.route("/invoices")
class Invoices(MethodView):
    @blp.arguments(InvoiceFilter, location="query")
    @blp.response(200, page_of(InvoiceSummarySchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List invoices (without lines); filter by customer, subscription, status, creation time"""
        with hub().session_factory() as session:
            query = filtered(
                select(Invoice),
                args,
                customer_id=Invoice.customer_id,
                subscription_id=Invoice.subscription_id,
                status=Invoice.status,
            )
            return page(session, query, Invoice.id, args, Invoice.created_at)

    @blp.arguments(CreateInvoiceSchema)
    @blp.response(201, InvoiceSchema)
    def post(self, data: dict[str, Any]) -> Invoice:
        """Create a one-off invoice (a draft unless finalize is true); one-off charges are not MRR"""
        lines = [invoicing.OneOffLine(**line) for line in data.pop("lines")]
        return invoicing.create_invoice(invoicing.CreateInvoice(lines=lines, **data), uow())


@blp.route("/invoices/<invoice_id>")
@blp.response(200, InvoiceSchema)
def get_invoice(invoice_id: str) -> Invoice:
    """Get an invoice with its lines"""
    return invoicing.get_invoice(uow(), invoice_id)


@blp.route("/invoices/<invoice_id>/attempts")
@blp.response(200, AttemptSchema(many=True))
def invoice_attempts(invoice_id: str) -> list[PaymentAttempt]:
    """Every payment attempt on an invoice, in order (the dunning history)"""
    with hub().session_factory() as session:
        if session.get(Invoice, invoice_id) is None:
            raise NotFound(f"no invoice {invoice_id}")
        return list(
            session.scalars(
                select(PaymentAttempt)
                .where(PaymentAttempt.invoice_id == invoice_id)
                .order_by(PaymentAttempt.attempt_number)
            )
        )


@blp.route("/invoices/<invoice_id>/finalize", methods=["POST"])
@blp.arguments(EmptySchema)
@blp.response(200, InvoiceSchema)
def finalize(data: dict[str, Any], invoice_id: str) -> Invoice:
    """Number a draft invoice and open it for payment"""
    invoice = invoicing.finalize_invoice(invoicing.FinalizeInvoice(invoice_id), uow())
    payments.collect_due(uow(), [invoice.id])
    return invoicing.get_invoice(uow(), invoice_id)


@blp.route("/invoices/<invoice_id>/void", methods=["POST"])
@blp.arguments(EmptySchema)
@blp.response(200, InvoiceSchema)
def void(data: dict[str, Any], invoice_id: str) -> Invoice:
    """Void a draft or open invoice that nothing was paid on"""
    return invoicing.void_invoice(invoicing.VoidInvoice(invoice_id), uow())


@blp.route("/invoices/<invoice_id>/mark-uncollectible", methods=["POST"])
@blp.arguments(EmptySchema)
@blp.response(200, InvoiceSchema)
def mark_uncollectible(data: dict[str, Any], invoice_id: str) -> Invoice:
    """Give up collecting an open invoice (it can still be paid later)"""
    return invoicing.mark_uncollectible(invoicing.MarkUncollectible(invoice_id), uow())


@blp.route("/invoices/<invoice_id>/pay", methods=["POST"])
@blp.arguments(EmptySchema)
@blp.response(200, CollectionSchema)
def pay(data: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    """Try to collect an open invoice through the payment gateway now"""
    report = payments.pay_invoice(payments.PayInvoice(invoice_id), uow())
    return {
        "attempted": report.attempted,
        "succeeded": report.succeeded,
        "failed": report.failed,
        "invoice": invoicing.get_invoice(uow(), invoice_id),
    }


@blp.route("/credit-notes")
class CreditNotes(MethodView):
    @blp.arguments(CreditNoteFilter, location="query")
    @blp.response(200, page_of(CreditNoteSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List credit notes"""
        with hub().session_factory() as session:
            query = filtered(
                select(CreditNote).options(selectinload(CreditNote.lines)),
                args,
                customer_id=CreditNote.customer_id,
                invoice_id=CreditNote.invoice_id,
            )
            return page(session, query, CreditNote.id, args, CreditNote.created_at)

    @blp.arguments(CreditNoteSchema)
    @blp.response(201, CreditNoteSchema)
    def post(self, data: dict[str, Any]) -> CreditNote:
        """Credit all or part of an issued invoice; on a paid invoice the credit is refunded"""
        lines = data.pop("lines")
        return credit_notes.create_credit_note(
            credit_notes.CreateCreditNote(
                lines=[credit_notes.CreditLine(**line) for line in lines] if lines is not None else None,
                **data,
            ),
            uow(),
        )


@blp.route("/credit-notes/<credit_note_id>")
@blp.response(200, CreditNoteSchema)
def get_credit_note(credit_note_id: str) -> CreditNote:
    """Get a credit note"""
    with hub().session_factory() as session:
        note = session.scalar(
            select(CreditNote).where(CreditNote.id == credit_note_id).options(selectinload(CreditNote.lines))
        )
        if note is None:
            raise NotFound(f"no credit note {credit_note_id}")
        return note


@blp.route("/payments")
class Payments(MethodView):
    @blp.arguments(PaymentFilter, location="query")
    @blp.response(200, page_of(PaymentSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List payments and refunds"""
        with hub().session_factory() as session:
            query = filtered(
                select(Payment),
                args,
                customer_id=Payment.customer_id,
                invoice_id=Payment.invoice_id,
                kind=Payment.kind,
            )
            return page(session, query, Payment.id, args, Payment.created_at)

    @blp.arguments(PaymentSchema)
    @blp.response(201, PaymentSchema)
    def post(self, data: dict[str, Any]) -> Payment:
        """Record money received outside the gateway (e.g. a bank transfer) against an invoice"""
        invoice = payments.record_payment(
            payments.RecordPayment(
                invoice_id=data["invoice_id"],
                amount=data["amount"],
                method=data["method"],
                reference=data.get("gateway_reference"),
            ),
            uow(),
        )
        with hub().session_factory() as session:
            latest = session.scalar(
                select(Payment)
                .where(Payment.invoice_id == invoice.id)
                .order_by(Payment.created_at.desc(), Payment.id.desc())
                .limit(1)
            )
            assert latest is not None
            return latest


@blp.route("/payments/<payment_id>")
@blp.response(200, PaymentSchema)
def get_payment(payment_id: str) -> Payment:
    """Get a payment or refund"""
    return fetch(Payment, payment_id, "payment")
