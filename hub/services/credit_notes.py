"""Credit notes: crediting all or part of an issued invoice."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hub.domain.errors import InvalidRequest, StateConflict
from hub.domain.ids import new_id
from hub.domain.invoicing import InvoiceStatus, format_number
from hub.domain.money import percent_of
from hub.services.invoicing import locked_invoice
from hub.services.numbering import CREDIT_NOTE_SERIES, allocate
from hub.services.payments import mark_paid, refund_payment
from hub.services.uow import UnitOfWork
from hub.store.models import CreditNote, CreditNoteLine, InvoiceLine

CREDIT_REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory", "other")


@dataclass(frozen=True)
class CreditLine:
    invoice_line_id: str
    net_amount: int


@dataclass(frozen=True)
class CreateCreditNote:
    invoice_id: str
    reason: str
    lines: list[CreditLine] | None = None  # None credits everything not yet credited
    memo: str | None = None
    refund: bool = True


def create_credit_note(cmd: CreateCreditNote, uow: UnitOfWork) -> CreditNote:
    """Credit all or part of an issued invoice.

    On an open invoice the credit lowers what is due (fully credited means
    settled). On a paid invoice the credited amount is refunded through the
    gateway when ``refund`` is set, otherwise recorded as settled outside it.
    """
    if cmd.reason not in CREDIT_REASONS:
        raise InvalidRequest(
            "unknown reason", fields={"reason": [f"must be one of {', '.join(CREDIT_REASONS)}"]}
        )
    with uow:
        invoice = locked_invoice(uow, cmd.invoice_id)
        if invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
            raise StateConflict(f"cannot credit an invoice that is {invoice.status}")
        invoice_lines = {
            line.id: line
            for line in uow.session.scalars(
                select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id).order_by(InvoiceLine.position)
            )
        }
        credited = _credited_per_line(uow, invoice.id)
        # Without lines, whatever is left of every line is credited, negative lines (a
        # proration credit) included: a full credit note is the invoice reversed, never more.
        full = not cmd.lines
        requested = cmd.lines or [
            CreditLine(line_id, line.net_amount - credited.get(line_id, 0))
            for line_id, line in invoice_lines.items()
            if line.net_amount - credited.get(line_id, 0) != 0
        ]
        errors: dict[str, list[str]] = {}
        note_lines: list[CreditNoteLine] = []
        for position, wanted in enumerate(requested, start=1):
            line = invoice_lines.get(wanted.invoice_line_id)
            if line is None:
                errors.setdefault("lines", []).append(
                    f"{wanted.invoice_line_id} is not a line of this invoice"
                )
                continue
            already = credited.get(line.id, 0)
            left = line.net_amount - already
            if not (0 < wanted.net_amount <= left or (full and wanted.net_amount == left < 0)):
                errors.setdefault("lines", []).append(
                    f"{line.id}: amount must be between 1 and {left} (what is left to credit)"
                )
                continue
            # VAT is rounded on the running total credited on the line, so partial credits
            # add up to exactly the line's VAT, never more.
            credited[line.id] = already + wanted.net_amount
            vat = percent_of(already + wanted.net_amount, line.vat_rate) - percent_of(already, line.vat_rate)
            note_lines.append(
                CreditNoteLine(
                    id=new_id("cnl"),
                    invoice_line_id=line.id,
                    position=position,
                    description=line.description,
                    net_amount=wanted.net_amount,
                    vat_rate=line.vat_rate,
                    vat_amount=vat,
                    total=wanted.net_amount + vat,
                )
            )
        if errors:
            raise InvalidRequest("some credit lines are not valid", fields=errors)
        if not note_lines:
            raise StateConflict("nothing is left to credit on this invoice")
        total = sum(line.total for line in note_lines)
        if invoice.amount_credited + total > invoice.total:
            left_on_invoice = invoice.total - invoice.amount_credited
            raise InvalidRequest(
                "a credit note cannot credit more than the invoice",
                fields={"lines": [f"these add up to {total}; {left_on_invoice} is left to credit"]},
            )
        [sequence] = allocate(uow.session, CREDIT_NOTE_SERIES, 1)
        note = CreditNote(
            id=new_id("cn"),
            number=format_number(uow.settings.credit_note_prefix, sequence),
            sequence=sequence,
            invoice_id=invoice.id,
            customer_id=invoice.customer_id,
            currency=invoice.currency,
            reason=cmd.reason,
            memo=cmd.memo,
            net_amount=sum(line.net_amount for line in note_lines),
            vat=sum(line.vat_amount for line in note_lines),
            total=total,
            refunded=0,
            created_at=uow.now,
            lines=note_lines,
        )
        uow.session.add(note)
        outstanding = invoice.amount_due
        invoice.amount_credited += total
        invoice.updated_at = uow.now
        to_refund = max(0, total - outstanding) if cmd.refund else 0
        uow.record(
            "credit_note.issued",
            "credit_note",
            note.id,
            customer_id=invoice.customer_id,
            data={
                "number": note.number,
                "invoice_id": invoice.id,
                "total": total,
                "vat": note.vat,
                "currency": note.currency,
                "reason": cmd.reason,
            },
        )
        if invoice.status in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE) and invoice.amount_due == 0:
            mark_paid(uow, invoice, credit_note_id=note.id)  # settled by the credit
        uow.commit()
    if to_refund:
        refund_payment(uow, note.id, to_refund)
    with uow:
        found = uow.session.scalar(
            select(CreditNote).where(CreditNote.id == note.id).options(selectinload(CreditNote.lines))
        )
        uow.session.expunge_all()
        assert found is not None
        return found


def _credited_per_line(uow: UnitOfWork, invoice_id: str) -> dict[str, int]:
    rows = uow.session.execute(
        select(CreditNoteLine.invoice_line_id, CreditNoteLine.net_amount)
        .join(CreditNote, CreditNote.id == CreditNoteLine.credit_note_id)
        .where(CreditNote.invoice_id == invoice_id)
    )
    credited: dict[str, int] = {}
    for line_id, amount in rows:
        if line_id is not None:
            credited[line_id] = credited.get(line_id, 0) + amount
    return credited
