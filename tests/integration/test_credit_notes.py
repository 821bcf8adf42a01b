"""Credit notes: partial and full, on open and paid invoices, with refunds through the test gateway."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.domain.errors import InvalidRequest, StateConflict
from hub.services import invoicing as inv
from hub.services import subscriptions as subs
from hub.services.credit_notes import CreateCreditNote, CreditLine, create_credit_note
from hub.services.payments import PayInvoice, RecordPayment, collect_due, pay_invoice, record_payment
from tests import factories
from tests.integration.support import at, attempts, bill, event_types, invoices, payments, subscription


@pytest.fixture
def karen(hub):
    return factories.customer(hub)


def open_invoice(hub, customer_id, amount=10_000):
    """A one-off invoice of ``amount`` + 25 % VAT, issued and not yet paid."""
    return inv.create_invoice(
        inv.CreateInvoice(customer_id, [inv.OneOffLine("Consulting", amount)], finalize=True), hub.uow()
    )


def paid_invoice(hub, customer_id, amount=10_000):
    invoice = open_invoice(hub, customer_id, amount)
    pay_invoice(PayInvoice(invoice.id), hub.uow())
    return invoices(hub, customer_id=customer_id)[-1]


def credit(hub, invoice_id, *lines, reason="order_change", **kw):
    wanted = [CreditLine(line_id, amount) for line_id, amount in lines] or None
    return create_credit_note(CreateCreditNote(invoice_id, reason, lines=wanted, **kw), hub.uow())


def reload(hub, invoice_id):
    [found] = [i for i in invoices(hub) if i.id == invoice_id]
    return found


def test_a_partial_credit_on_an_open_invoice_lowers_what_is_due(hub, karen):
    invoice = open_invoice(hub, karen.id)  # 10 000 + 2 500 VAT = 12 500
    note = credit(hub, invoice.id, (invoice.lines[0].id, 4_000))

    assert (note.number, note.net_amount, note.vat, note.total, note.refunded) == (
        "CN-000001",
        4_000,
        1_000,
        5_000,
        0,
    )
    [line] = note.lines
    assert (line.invoice_line_id, line.net_amount, line.vat_amount, line.total) == (
        invoice.lines[0].id,
        4_000,
        1_000,
        5_000,
    )
    after = reload(hub, invoice.id)
    assert (after.status, after.amount_credited, after.amount_due) == ("open", 5_000, 7_500)  # 12 500 − 5 000
    assert payments(hub, invoice.id) == []

    collect_due(hub.uow())
    [attempt] = attempts(hub, invoice.id)
    assert attempt.amount == 7_500  # only what is still due is charged
    assert reload(hub, invoice.id).status == "paid"


def test_a_full_credit_on_an_open_invoice_settles_it(hub, karen):
    invoice = open_invoice(hub, karen.id)
    note = credit(hub, invoice.id)
    assert note.total == 12_500
    after = reload(hub, invoice.id)
    assert (after.status, after.amount_due, after.next_payment_attempt_at) == ("paid", 0, None)
    collect_due(hub.uow())
    assert attempts(hub, invoice.id) == []
    assert payments(hub, invoice.id) == []  # nothing was paid, so nothing is refunded
    assert event_types(hub, invoice.id) == ["invoice.issued", "invoice.paid"]


def test_a_full_credit_on_a_paid_invoice_is_refunded_through_the_gateway(hub, karen):
    invoice = paid_invoice(hub, karen.id)
    note = credit(hub, invoice.id, reason="product_unsatisfactory", memo="Sorry")

    assert (note.total, note.refunded, note.memo) == (12_500, 12_500, "Sorry")
    [payment, refund] = payments(hub, invoice.id)
    assert (payment.kind, payment.amount) == ("payment", 12_500)
    assert (refund.kind, refund.amount, refund.method, refund.credit_note_id) == (
        "refund",
        -12_500,
        "testpay",
        note.id,
    )
    assert refund.gateway_reference.startswith("re_")
    assert reload(hub, invoice.id).status == "paid"  # it stays paid; the credit note records the reversal
    assert event_types(hub, note.id) == ["credit_note.issued"]
    assert event_types(hub, refund.id) == ["payment.refunded"]


def test_a_partial_credit_on_a_paid_invoice_refunds_that_part(hub, karen):
    invoice = paid_invoice(hub, karen.id)
    note = credit(hub, invoice.id, (invoice.lines[0].id, 2_000))
    # 2 000 + 500 VAT = 2 500 refunded
    assert (note.total, note.refunded) == (2_500, 2_500)
    assert [p.amount for p in payments(hub, invoice.id)] == [12_500, -2_500]
    # What is left can be credited later, and no more.
    second = credit(hub, invoice.id)
    assert (second.net_amount, second.total, second.refunded) == (8_000, 10_000, 10_000)
    assert [p.amount for p in payments(hub, invoice.id)] == [12_500, -2_500, -10_000]
    with pytest.raises(StateConflict):
        credit(hub, invoice.id)


def test_a_credit_without_refund_records_no_money_moving(hub, karen):
    invoice = paid_invoice(hub, karen.id)
    note = credit(hub, invoice.id, refund=False)
    assert (note.total, note.refunded) == (12_500, 0)
    assert [p.amount for p in payments(hub, invoice.id)] == [12_500]


def test_a_credit_on_a_partly_paid_invoice_refunds_only_what_was_overpaid(hub, karen):
    invoice = open_invoice(hub, karen.id)  # 12 500
    record_payment(RecordPayment(invoice.id, 5_000, reference="bank"), hub.uow())
    note = credit(hub, invoice.id)  # credits 12 500: 7 500 was still due, 5 000 was paid
    assert (note.total, note.refunded) == (12_500, 5_000)
    [_, refund] = payments(hub, invoice.id)
    assert (refund.amount, refund.method) == (-5_000, "manual")  # paid by bank transfer, refunded outside
    assert reload(hub, invoice.id).status == "paid"


def test_credit_note_numbers_are_their_own_sequence(hub, karen):
    first = open_invoice(hub, karen.id)
    second = open_invoice(hub, karen.id)
    notes = [credit(hub, first.id, (first.lines[0].id, 100)), credit(hub, second.id), credit(hub, first.id)]
    assert [n.number for n in notes] == ["CN-000001", "CN-000002", "CN-000003"]
    assert [i.number for i in invoices(hub)] == ["INV-000001", "INV-000002"]


def test_more_than_is_left_on_a_line_is_refused(hub, karen):
    invoice = open_invoice(hub, karen.id)
    line_id = invoice.lines[0].id
    credit(hub, invoice.id, (line_id, 6_000))
    for amount in (4_001, 0, -1):
        with pytest.raises(InvalidRequest) as caught:
            credit(hub, invoice.id, (line_id, amount))
        assert "lines" in caught.value.fields
    with pytest.raises(InvalidRequest):
        credit(hub, invoice.id, ("il_not_on_this_invoice", 100))
    with pytest.raises(InvalidRequest):
        credit(hub, invoice.id, reason="changed_my_mind")
    assert reload(hub, invoice.id).amount_credited == 7_500  # 6 000 + 1 500 VAT, nothing more


def test_drafts_and_void_invoices_cannot_be_credited(hub, karen):
    draft = inv.create_invoice(inv.CreateInvoice(karen.id, [inv.OneOffLine("Consulting", 100)]), hub.uow())
    voided = open_invoice(hub, karen.id)
    inv.void_invoice(inv.VoidInvoice(voided.id), hub.uow())
    for invoice_id in (draft.id, voided.id):
        with pytest.raises(StateConflict):
            credit(hub, invoice_id)


def test_partial_credits_never_add_up_to_more_vat_than_the_line_had(hub, karen):
    invoice = paid_invoice(hub, karen.id, amount=6)  # 6 øre, VAT 1.5 → 2, total 8
    line_id = invoice.lines[0].id
    notes = [credit(hub, invoice.id, (line_id, 2)) for _ in range(3)]
    # Each 2 øre alone would carry VAT 0.5 → 1, three times 3 øre of VAT for a line that had 2.
    # VAT is credited on the running total instead: round(2 × 25 %) = 1, round(4 × 25 %) = 1 → 0,
    # round(6 × 25 %) = 2 → 1.
    assert [n.vat for n in notes] == [1, 0, 1]
    assert sum(n.total for n in notes) == 8  # exactly the invoice
    assert reload(hub, invoice.id).amount_credited == 8
    assert sum(p.amount for p in payments(hub, invoice.id)) == 0


def test_a_full_credit_of_an_invoice_with_a_proration_credit_equals_the_invoice(hub, karen):
    small = factories.plan(hub, amount=10_000, name="Small")
    large = factories.plan(hub, amount=20_000, name="Large")
    hub.clock.set(at("2026-04-01 00:00"))
    sub_id = factories.subscribe(hub, karen.id, large.id)
    hub.clock.set(at("2026-04-11 03:20"))
    subs.change_plan(subs.ChangePlan(sub_id, small.id), hub.uow())
    bill(hub, "2026-05-01 00:00")
    renewal = invoices(hub, sub_id)[-1]
    # 10 000 + 6 620 − 13 241 = 3 379 net; VAT 2 500 + 1 655 − 3 310 = 845; total 4 224 (paid)
    assert (renewal.total, renewal.status) == (4_224, "paid")

    with pytest.raises(InvalidRequest):
        # Crediting the whole subscription line (12 500) would credit more than the invoice (4 224).
        credit(hub, renewal.id, (renewal.lines[0].id, 10_000))
    note = credit(hub, renewal.id)
    assert (note.net_amount, note.vat, note.total, note.refunded) == (3_379, 845, 4_224, 4_224)
    assert [line.net_amount for line in note.lines] == [10_000, 6_620, -13_241]  # the invoice, reversed
    assert reload(hub, renewal.id).amount_credited == 4_224
    assert sum(p.amount for p in payments(hub, renewal.id)) == 0


def test_crediting_the_overdue_invoice_in_full_brings_a_past_due_subscription_back(hub, clock):
    customer = factories.customer(hub, meta={"payment_method": "declined"})
    plan = factories.plan(hub, amount=10_000)
    sub_id = factories.subscribe(hub, customer.id, plan.id)
    collect_due(hub.uow())
    assert subscription(hub, sub_id).status == "past_due"
    [overdue] = invoices(hub, sub_id)

    clock.set(datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    credit(hub, overdue.id, reason="other", memo="Waived")
    assert reload(hub, overdue.id).status == "paid"
    assert subscription(hub, sub_id).status == "active"
    assert event_types(hub, sub_id)[-1] == "subscription.recovered"

    bill(hub, "2026-01-22 09:00")  # the dunning schedule has nothing left to do
    assert len(attempts(hub, overdue.id)) == 1
    assert subscription(hub, sub_id).status == "active"
