"""Invoice lines, discounts and VAT.

Prices are exclusive of VAT. Per line: ``amount = quantity × unit_amount``;
``net = amount - discount``; ``vat = net × rate`` rounded once, half away from
zero; ``total = net + vat``. An invoice's subtotal, discount, VAT and total are
plain sums of its lines, so they always add up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum

from hub.domain.errors import StateConflict
from hub.domain.money import percent_of

DANISH_VAT = Decimal("25.00")


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class LineKind(StrEnum):
    SUBSCRIPTION = "subscription"
    PRORATION = "proration"
    ONE_OFF = "one_off"


@dataclass(frozen=True)
class Line:
    description: str
    quantity: int
    unit_amount: int
    vat_rate: Decimal
    kind: LineKind = LineKind.SUBSCRIPTION
    discount_amount: int = 0
    period_start: datetime | None = None
    period_end: datetime | None = None
    plan_id: str | None = None

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_amount

    @property
    def net_amount(self) -> int:
        return self.amount - self.discount_amount

    @property
    def vat_amount(self) -> int:
        return percent_of(self.net_amount, self.vat_rate)

    @property
    def total(self) -> int:
        return self.net_amount + self.vat_amount


@dataclass(frozen=True)
class Totals:
    subtotal: int
    discount: int
    vat: int
    total: int


def totals(lines: Iterable[Line]) -> Totals:
    lines = list(lines)
    return Totals(
        subtotal=sum(line.amount for line in lines),
        discount=sum(line.discount_amount for line in lines),
        vat=sum(line.vat_amount for line in lines),
        total=sum(line.total for line in lines),
    )


@dataclass(frozen=True)
class Discount:
    """What a coupon takes off one recurring line."""

    percent_off: Decimal | None = None
    amount_off: int | None = None

    def on(self, amount: int) -> int:
        if amount <= 0:
            return 0
        if self.percent_off is not None:
            return min(amount, percent_of(amount, self.percent_off))
        return min(amount, self.amount_off or 0)


def format_number(prefix: str, sequence: int) -> str:
    """Invoice and credit-note numbers: prefix plus a zero-padded sequence, e.g. INV-000042."""
    return f"{prefix}{sequence:06d}"


INVOICE_TRANSITIONS: dict[str, dict[InvoiceStatus, InvoiceStatus]] = {
    "finalize": {InvoiceStatus.DRAFT: InvoiceStatus.OPEN},
    "pay": {InvoiceStatus.OPEN: InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE: InvoiceStatus.PAID},
    "void": {
        InvoiceStatus.DRAFT: InvoiceStatus.VOID,
        InvoiceStatus.OPEN: InvoiceStatus.VOID,
        InvoiceStatus.UNCOLLECTIBLE: InvoiceStatus.VOID,
    },
    "mark_uncollectible": {InvoiceStatus.OPEN: InvoiceStatus.UNCOLLECTIBLE},
}


def invoice_transition(status: str, action: str) -> InvoiceStatus:
    target = INVOICE_TRANSITIONS[action].get(InvoiceStatus(status))
    if target is None:
        raise StateConflict(f"cannot {action.replace('_', ' ')} an invoice that is {status}")
    return target


def billable(lines: list[Line]) -> tuple[list[Line], list[Line]]:
    """Split lines into those to invoice now and credits to carry forward.

    An invoice never goes below zero: every charge is invoiced, and credits are
    added (largest first) while the total stays at or above zero. The first
    credit that would take it below zero is split: the largest part that keeps
    the total at or above zero is invoiced (the last of the chosen lines) and
    the rest waits (the first of the carried lines), with every smaller credit,
    for the next invoice. So a credit bigger than one invoice is used up over
    the following ones instead of waiting forever.
    """
    charges = [line for line in lines if line.net_amount >= 0]
    credits = sorted((line for line in lines if line.net_amount < 0), key=lambda line: line.net_amount)
    running = sum(line.total for line in charges)
    taken: list[Line] = []
    carried: list[Line] = []
    for index, credit in enumerate(credits):
        if running + credit.total >= 0:
            taken.append(credit)
            running += credit.total
            continue
        part = _largest_part(credit, running)
        if part == 0:
            carried.extend(credits[index:])
        else:
            taken.append(replace(credit, quantity=1, unit_amount=part, discount_amount=0))
            rest = replace(credit, quantity=1, unit_amount=credit.net_amount - part, discount_amount=0)
            carried.extend([rest, *credits[index + 1 :]])
        break
    return charges + taken, carried


def _largest_part(credit: Line, room: int) -> int:
    """The most negative net amount, no bigger than ``credit``'s, whose total with VAT fits in ``room``."""

    def total(net: int) -> int:
        return net + percent_of(net, credit.vat_rate)

    # Start from room / (1 + rate), then correct for the rounding of the VAT.
    net = -int((Decimal(room) * 100 / (100 + credit.vat_rate)).to_integral_value(ROUND_FLOOR))
    while net < 0 and total(net) < -room:
        net += 1
    while net > credit.net_amount and total(net - 1) >= -room:
        net -= 1
    return net
