"""Issuing invoices, one-off invoices, voiding, and credit notes.

Invoices are written in bulk with Core inserts (the billing run issues
thousands per transaction); one invoice is just a batch of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import object_session, selectinload

from hub.domain.errors import InvalidRequest, NotFound, StateConflict
from hub.domain.ids import new_id
from hub.domain.invoicing import (
    DANISH_VAT,
    InvoiceStatus,
    Line,
    LineKind,
    billable,
    format_number,
    invoice_transition,
    totals,
)
from hub.services.numbering import INVOICE_SERIES, allocate
from hub.services.uow import UnitOfWork
from hub.store.models import (
    Customer,
    Invoice,
    InvoiceLine,
    PendingItem,
)


@dataclass
class InvoiceDraft:
    customer_id: str
    currency: str
    billing_reason: str
    lines: list[Line]
    subscription_id: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    pending_item_ids: list[str] = field(default_factory=list)


def pending_items(uow: UnitOfWork, subscription_ids: Sequence[str]) -> dict[str, list[PendingItem]]:
    """Uninvoiced items per subscription."""
    found: dict[str, list[PendingItem]] = {}
    if not subscription_ids:
        return found
    rows = uow.session.scalars(
        select(PendingItem)
        .where(PendingItem.subscription_id.in_(subscription_ids), PendingItem.invoice_id.is_(None))
        .order_by(PendingItem.created_at, PendingItem.id)
    )
    for item in rows:
        found.setdefault(item.subscription_id or "", []).append(item)
    return found


def item_line(item: PendingItem) -> Line:
    return Line(
        description=item.description,
        quantity=item.quantity,
        unit_amount=item.unit_amount,
        vat_rate=item.vat_rate,
        kind=LineKind(item.kind),
        period_start=item.period_start,
        period_end=item.period_end,
        plan_id=item.plan_id,
    )


def with_pending(draft: InvoiceDraft, items: list[PendingItem]) -> InvoiceDraft:
    """Add waiting items to ``draft``, leaving credits that would make it negative for later."""
    item_lines = [item_line(item) for item in items]
    by_line = {id(line): item for line, item in zip(item_lines, items, strict=True)}
    chosen, carried = billable(draft.lines + item_lines)
    draft.lines = chosen
    draft.pending_item_ids = [by_line[id(line)].id for line in chosen if id(line) in by_line]
    placed = {id(line) for line in chosen} | {id(line) for line in carried}
    split = [item for line, item in zip(item_lines, items, strict=True) if id(line) not in placed]
    if split:
        # billable() invoiced part of one credit: the item becomes that part, a new item keeps the rest.
        [item] = split
        part, rest = chosen[-1], carried[0]
        session = object_session(item)
        assert session is not None
        session.add(
            PendingItem(
                id=new_id("ii"),
                customer_id=item.customer_id,
                subscription_id=item.subscription_id,
                invoice_id=None,
                description=item.description,
                kind=item.kind,
                quantity=rest.quantity,
                unit_amount=rest.unit_amount,
                currency=item.currency,
                vat_rate=item.vat_rate,
                plan_id=item.plan_id,
                period_start=item.period_start,
                period_end=item.period_end,
                created_at=item.created_at,
            )
        )
        item.quantity, item.unit_amount = part.quantity, part.unit_amount
        draft.pending_item_ids.append(item.id)
    return draft


def issue(uow: UnitOfWork, drafts: Sequence[InvoiceDraft], *, finalize: bool = True) -> list[str]:
    """Write ``drafts`` as invoices (numbered and open, or paid when nothing is due)."""
    if not drafts:
        return []
    now = uow.now
    numbers = iter(allocate(uow.session, INVOICE_SERIES, len(drafts))) if finalize else None
    invoice_rows: list[dict[str, Any]] = []
    line_rows: list[dict[str, Any]] = []
    item_links: list[dict[str, Any]] = []
    for draft in drafts:
        invoice_id = new_id("in")
        sums = totals(draft.lines)
        sequence = next(numbers) if numbers is not None else None
        if not finalize:
            status = InvoiceStatus.DRAFT
        elif sums.total == 0:
            status = InvoiceStatus.PAID
        else:
            status = InvoiceStatus.OPEN
        invoice_rows.append(
            {
                "id": invoice_id,
                "number": format_number(uow.settings.invoice_prefix, sequence) if sequence else None,
                "sequence": sequence,
                "customer_id": draft.customer_id,
                "subscription_id": draft.subscription_id,
                "status": status.value,
                "billing_reason": draft.billing_reason,
                "currency": draft.currency,
                "subtotal": sums.subtotal,
                "discount": sums.discount,
                "vat": sums.vat,
                "total": sums.total,
                "amount_paid": 0,
                "amount_credited": 0,
                "period_start": draft.period_start,
                "period_end": draft.period_end,
                "issued_at": now if finalize else None,
                "due_at": now if finalize else None,
                "paid_at": now if status is InvoiceStatus.PAID else None,
                "voided_at": None,
                "attempt_count": 0,
                "first_failed_at": None,
                "next_payment_attempt_at": now if status is InvoiceStatus.OPEN else None,
                "created_at": now,
                "updated_at": now,
            }
        )
        for position, line in enumerate(draft.lines, start=1):
            line_rows.append(line_row(invoice_id, position, line))
        item_links.extend({"id": item_id, "invoice_id": invoice_id} for item_id in draft.pending_item_ids)
        uow.record(
            "invoice.issued" if finalize else "invoice.drafted",
            "invoice",
            invoice_id,
            customer_id=draft.customer_id,
            data={
                "number": invoice_rows[-1]["number"],
                "status": status.value,
                "subscription_id": draft.subscription_id,
                "billing_reason": draft.billing_reason,
                "currency": draft.currency,
                "total": sums.total,
                "vat": sums.vat,
            },
        )
    # render_nulls: every row has the same columns (None is NULL), so the whole
    # batch is one executemany instead of one per run of rows with the same
    # None columns (e.g. open and paid invoices interleaved).
    uow.session.execute(insert(Invoice).execution_options(render_nulls=True), invoice_rows)
    if line_rows:
        uow.session.execute(insert(InvoiceLine).execution_options(render_nulls=True), line_rows)
    if item_links:
        uow.session.execute(update(PendingItem), item_links)
    return [row["id"] for row in invoice_rows]


def line_row(invoice_id: str, position: int, line: Line) -> dict[str, Any]:
    return {
        "id": new_id("il"),
        "invoice_id": invoice_id,
        "position": position,
        "description": line.description,
        "kind": line.kind.value,
        "quantity": line.quantity,
        "unit_amount": line.unit_amount,
        "amount": line.amount,
        "discount_amount": line.discount_amount,
        "net_amount": line.net_amount,
        "vat_rate": line.vat_rate,
        "vat_amount": line.vat_amount,
        "total": line.total,
        "plan_id": line.plan_id,
        "period_start": line.period_start,
        "period_end": line.period_end,
    }


# --- one-off invoices -------------------------------------------------------


@dataclass(frozen=True)
class OneOffLine:
    description: str
    unit_amount: int
    quantity: int = 1
    vat_rate: Decimal | None = None


@dataclass(frozen=True)
class CreateInvoice:
    customer_id: str
    lines: list[OneOffLine]
    finalize: bool = False


@dataclass(frozen=True)
class FinalizeInvoice:
    invoice_id: str


@dataclass(frozen=True)
class VoidInvoice:
    invoice_id: str


@dataclass(frozen=True)
class MarkUncollectible:
    invoice_id: str


def create_invoice(cmd: CreateInvoice, uow: UnitOfWork) -> Invoice:
    """A one-off invoice (not in MRR): a draft unless ``finalize`` is set."""
    with uow:
        customer = uow.session.get(Customer, cmd.customer_id)
        if customer is None:
            raise InvalidRequest("no such customer", fields={"customer_id": ["no customer with this id"]})
        if not cmd.lines:
            raise InvalidRequest(
                "an invoice needs at least one line", fields={"lines": ["must not be empty"]}
            )
        default_vat = DANISH_VAT
        draft = InvoiceDraft(
            customer_id=customer.id,
            currency=customer.currency,
            billing_reason="manual",
            lines=[
                Line(
                    description=line.description,
                    quantity=line.quantity,
                    unit_amount=line.unit_amount,
                    vat_rate=line.vat_rate if line.vat_rate is not None else default_vat,
                    kind=LineKind.ONE_OFF,
                )
                for line in cmd.lines
            ],
        )
        if totals(draft.lines).total < 0:
            raise InvalidRequest(
                "an invoice total cannot be negative; issue a credit note instead",
                fields={"lines": ["the lines add up to less than zero"]},
            )
        [invoice_id] = issue(uow, [draft], finalize=cmd.finalize)
        uow.commit()
    return get_invoice(uow, invoice_id)


def get_invoice(uow: UnitOfWork, invoice_id: str) -> Invoice:
    with uow:
        invoice = uow.session.scalar(
            select(Invoice).where(Invoice.id == invoice_id).options(selectinload(Invoice.lines))
        )
        if invoice is None:
            raise NotFound(f"no invoice {invoice_id}")
        uow.session.expunge_all()
        return invoice


def locked_invoice(uow: UnitOfWork, invoice_id: str) -> Invoice:
    invoice = uow.session.get(Invoice, invoice_id, with_for_update=True)
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}")
    return invoice


def finalize_invoice(cmd: FinalizeInvoice, uow: UnitOfWork) -> Invoice:
    with uow:
        invoice = locked_invoice(uow, cmd.invoice_id)
        invoice.status = invoice_transition(invoice.status, "finalize").value
        [sequence] = allocate(uow.session, INVOICE_SERIES, 1)
        invoice.sequence = sequence
        invoice.number = format_number(uow.settings.invoice_prefix, sequence)
        invoice.issued_at = invoice.due_at = uow.now
        invoice.updated_at = uow.now
        if invoice.total == 0:
            invoice.status = InvoiceStatus.PAID.value
            invoice.paid_at = uow.now
        else:
            invoice.next_payment_attempt_at = uow.now
        uow.record(
            "invoice.issued",
            "invoice",
            invoice.id,
            customer_id=invoice.customer_id,
            data={
                "number": invoice.number,
                "status": invoice.status,
                "total": invoice.total,
                "vat": invoice.vat,
                "currency": invoice.currency,
            },
        )
        uow.commit()
    return get_invoice(uow, cmd.invoice_id)


def void_invoice(cmd: VoidInvoice, uow: UnitOfWork) -> Invoice:
    with uow:
        invoice = locked_invoice(uow, cmd.invoice_id)
        target = invoice_transition(invoice.status, "void")
        if invoice.amount_paid > 0:
            raise StateConflict("an invoice with payments cannot be voided; issue a credit note")
        before = invoice.status
        invoice.status = target.value
        invoice.voided_at = invoice.updated_at = uow.now
        invoice.next_payment_attempt_at = None
        uow.record(
            "invoice.voided",
            "invoice",
            invoice.id,
            customer_id=invoice.customer_id,
            data={"before": {"status": before}, "after": {"status": invoice.status}},
        )
        uow.commit()
    return get_invoice(uow, cmd.invoice_id)


def mark_uncollectible(cmd: MarkUncollectible, uow: UnitOfWork) -> Invoice:
    with uow:
        invoice = locked_invoice(uow, cmd.invoice_id)
        before = invoice.status
        invoice.status = invoice_transition(invoice.status, "mark_uncollectible").value
        invoice.next_payment_attempt_at = None
        invoice.updated_at = uow.now
        uow.record(
            "invoice.marked_uncollectible",
            "invoice",
            invoice.id,
            customer_id=invoice.customer_id,
            data={"before": {"status": before}, "after": {"status": invoice.status}},
        )
        uow.commit()
    return get_invoice(uow, cmd.invoice_id)
