"""Invoices: one-off invoices, statuses draft/open/paid/void/uncollectible, numbering, payments."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hub.domain.errors import InvalidRequest, NotFound, StateConflict
from hub.services import invoicing as inv
from hub.services.payments import PayInvoice, RecordPayment, collect_due, pay_invoice, record_payment
from hub.store.models import Customer
from tests import factories
from tests.integration.support import attempts, bill, event_types, invoices, lines_of, payments, sums


@pytest.fixture
def karen(hub):
    return factories.customer(hub)


def one_off(hub, customer_id, *lines, finalize=False):
    return inv.create_invoice(
        inv.CreateInvoice(customer_id, [inv.OneOffLine(*line) for line in lines], finalize=finalize),
        hub.uow(),
    )


def finalize(hub, invoice_id):
    return inv.finalize_invoice(inv.FinalizeInvoice(invoice_id), hub.uow())


def void(hub, invoice_id):
    return inv.void_invoice(inv.VoidInvoice(invoice_id), hub.uow())


def uncollectible(hub, invoice_id):
    return inv.mark_uncollectible(inv.MarkUncollectible(invoice_id), hub.uow())


def test_a_one_off_invoice_with_vat_per_line(hub, karen):
    invoice = one_off(
        hub,
        karen.id,
        ("Setup", 4_999),  # VAT 1 249.75 → 1 250
        ("Extra seats", 333, 3),  # 3 × 333 = 999, VAT 249.75 → 250
        ("Printed handbook", 10_000, 1, Decimal("0")),  # no VAT
        finalize=True,
    )
    assert [
        (line.kind, line.amount, line.vat_rate, line.vat_amount, line.total) for line in invoice.lines
    ] == [
        ("one_off", 4_999, Decimal("25.00"), 1_250, 6_249),
        ("one_off", 999, Decimal("25.00"), 250, 1_249),
        ("one_off", 10_000, Decimal("0.00"), 0, 10_000),
    ]
    # subtotal 4 999 + 999 + 10 000 = 15 998; VAT 1 250 + 250 = 1 500; total 17 498
    assert sums(invoice) == (15_998, 0, 1_500, 17_498)
    assert (invoice.number, invoice.status, invoice.billing_reason) == ("INV-000001", "open", "manual")
    assert invoice.subscription_id is None


def test_a_draft_has_no_number_until_finalized_so_numbers_have_no_gaps(hub, karen):
    plan = factories.plan(hub, amount=10_000)
    factories.subscribe(hub, karen.id, plan.id)  # INV-000001
    draft = one_off(hub, karen.id, ("Consulting", 50_000))
    assert (draft.status, draft.number, draft.sequence, draft.issued_at) == ("draft", None, None, None)
    factories.subscribe(hub, karen.id, plan.id)  # INV-000002
    bill(hub, "2026-01-16 00:00")
    assert attempts(hub, draft.id) == []  # a draft is never collected

    issued = finalize(hub, draft.id)
    assert (issued.status, issued.number, issued.sequence) == ("open", "INV-000003", 3)
    assert issued.next_payment_attempt_at == issued.issued_at
    assert [i.number for i in invoices(hub)] == ["INV-000001", "INV-000002", "INV-000003"]
    assert event_types(hub, draft.id) == ["invoice.drafted", "invoice.issued"]


def test_an_open_invoice_is_paid_through_the_gateway(hub, karen):
    invoice = one_off(hub, karen.id, ("Consulting", 10_000), finalize=True)
    report = pay_invoice(PayInvoice(invoice.id), hub.uow())
    assert (report.attempted, report.succeeded) == (1, 1)
    [paid] = invoices(hub)
    assert (paid.status, paid.amount_paid, paid.amount_due) == ("paid", 12_500, 0)
    [payment] = payments(hub, invoice.id)
    assert (payment.kind, payment.amount, payment.method) == ("payment", 12_500, "card")
    assert payment.gateway_reference.startswith("ch_")
    assert event_types(hub, invoice.id) == ["invoice.issued", "invoice.paid"]
    with pytest.raises(StateConflict):
        pay_invoice(PayInvoice(invoice.id), hub.uow())


def test_a_zero_invoice_is_paid_when_finalized(hub, karen):
    invoice = one_off(hub, karen.id, ("Goodwill", 0))
    issued = finalize(hub, invoice.id)
    assert (issued.status, issued.total) == ("paid", 0)
    assert issued.paid_at is not None


def test_payments_received_outside_the_gateway_in_parts(hub, karen):
    invoice = one_off(hub, karen.id, ("Consulting", 10_000), finalize=True)  # 12 500
    part = record_payment(RecordPayment(invoice.id, 5_000, reference="bank 1"), hub.uow())
    assert (part.status, part.amount_paid, part.amount_due) == ("open", 5_000, 7_500)
    with pytest.raises(InvalidRequest):
        record_payment(RecordPayment(invoice.id, 7_501), hub.uow())  # more than is due
    with pytest.raises(InvalidRequest):
        record_payment(RecordPayment(invoice.id, 0), hub.uow())
    rest = record_payment(RecordPayment(invoice.id, 7_500), hub.uow())
    assert (rest.status, rest.amount_paid, rest.amount_due) == ("paid", 12_500, 0)
    assert [(p.amount, p.method) for p in payments(hub, invoice.id)] == [
        (5_000, "bank_transfer"),
        (7_500, "bank_transfer"),
    ]


def test_void_a_draft_and_an_open_invoice(hub, karen):
    draft = one_off(hub, karen.id, ("Consulting", 10_000))
    assert void(hub, draft.id).status == "void"
    opened = one_off(hub, karen.id, ("Consulting", 10_000), finalize=True)
    voided = void(hub, opened.id)
    assert (voided.status, voided.next_payment_attempt_at) == ("void", None)
    assert voided.voided_at is not None
    collect_due(hub.uow())
    assert attempts(hub, opened.id) == []  # a voided invoice is never collected
    assert event_types(hub, opened.id) == ["invoice.issued", "invoice.voided"]


def test_an_open_invoice_written_off_and_then_paid_after_all(hub, karen):
    opened = one_off(hub, karen.id, ("Consulting", 10_000), finalize=True)
    written_off = uncollectible(hub, opened.id)
    assert (written_off.status, written_off.next_payment_attempt_at) == ("uncollectible", None)
    collect_due(hub.uow())
    assert attempts(hub, opened.id) == []
    paid = record_payment(RecordPayment(opened.id, 12_500), hub.uow())
    assert paid.status == "paid"
    assert event_types(hub, opened.id) == ["invoice.issued", "invoice.marked_uncollectible", "invoice.paid"]


def test_illegal_invoice_moves_are_conflicts_and_change_nothing(hub, karen):
    draft = one_off(hub, karen.id, ("Consulting", 10_000))
    opened = one_off(hub, karen.id, ("Consulting", 10_000), finalize=True)
    paid = one_off(hub, karen.id, ("Consulting", 10_000), finalize=True)
    record_payment(RecordPayment(paid.id, 12_500), hub.uow())
    partly = one_off(hub, karen.id, ("Consulting", 10_000), finalize=True)
    record_payment(RecordPayment(partly.id, 100), hub.uow())

    refused = [
        (finalize, opened.id),
        (finalize, paid.id),
        (uncollectible, draft.id),
        (uncollectible, paid.id),
        (void, paid.id),
        (void, partly.id),  # money was received: credit it instead
        (lambda hub, i: record_payment(RecordPayment(i, 100), hub.uow()), draft.id),
        (lambda hub, i: pay_invoice(PayInvoice(i), hub.uow()), draft.id),
    ]
    for handler, invoice_id in refused:
        before = [(i.id, i.status, i.number) for i in invoices(hub)]
        with pytest.raises(StateConflict):
            handler(hub, invoice_id)
        assert [(i.id, i.status, i.number) for i in invoices(hub)] == before
    assert [i.number for i in invoices(hub) if i.number] == ["INV-000001", "INV-000002", "INV-000003"]


def test_a_one_off_invoice_is_never_negative(hub, karen):
    with pytest.raises(InvalidRequest):
        one_off(hub, karen.id, ("Refund", -100))
    with pytest.raises(InvalidRequest):
        one_off(hub, karen.id)
    with pytest.raises(InvalidRequest):
        one_off(hub, "cus_missing", ("Consulting", 100))
    # A negative line is fine while the invoice stays at or above zero.
    invoice = one_off(hub, karen.id, ("Consulting", 10_000), ("Goodwill", -2_000), finalize=True)
    # 10 000 (VAT 2 500) − 2 000 (VAT −500): subtotal 8 000, VAT 2 000, total 10 000
    assert sums(invoice) == (8_000, 0, 2_000, 10_000)
    assert lines_of(invoice)[1] == ("one_off", -2_000, 0, -500, -2_500)


def test_an_unknown_invoice_is_not_found(hub):
    with pytest.raises(NotFound):
        finalize(hub, "in_missing")
    with pytest.raises(NotFound):
        inv.get_invoice(hub.uow(), "in_missing")


def test_a_one_off_invoice_is_not_recurring_revenue(hub, karen):
    one_off(hub, karen.id, ("Consulting", 10_000), finalize=True)
    with hub.session_factory() as session:
        customer = session.get(Customer, karen.id)
        assert (customer.mrr, customer.revenue_state) == (0, "none")
