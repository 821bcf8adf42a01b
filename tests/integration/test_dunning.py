"""Dunning end to end with the test gateway: retries on days 1, 3, 5 and 7 after the first failure.

The subscription starts 2026-01-15 09:00 UTC (monthly, 100.00 + 25 % VAT = 125.00); the first
attempt is made by the billing run at that moment.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hub.services import customers
from hub.services import subscriptions as subs
from hub.services.payments import RecordPayment, record_payment
from hub.store.models import Customer
from tests import factories
from tests.conftest import START, make_hub, wipe
from tests.integration.support import at, attempts, bill, event_types, events, invoices, subscription

SCHEDULE = ["2026-01-16 09:00", "2026-01-18 09:00", "2026-01-20 09:00", "2026-01-22 09:00"]


@pytest.fixture
def lenient(database) -> Iterator:
    """A hub whose dunning leaves the subscription past due after the last retry."""
    instance = make_hub(database, dunning_final_action="leave_past_due")
    wipe(instance)
    try:
        yield instance
    finally:
        instance.close()


def declined_subscription(hub, method="declined"):
    customer = factories.customer(hub, meta={"payment_method": method})
    plan = factories.plan(hub, amount=10_000)
    return customer, factories.subscribe(hub, customer.id, plan.id)


def revenue_state(hub, customer_id):
    with hub.session_factory() as session:
        found = session.get(Customer, customer_id)
        return found.revenue_state, found.mrr


def test_a_declined_card_goes_past_due_is_retried_on_schedule_then_canceled(hub):
    customer, sub_id = declined_subscription(hub)
    [invoice] = invoices(hub, sub_id)

    report = bill(hub, START)
    assert (report.collection.attempted, report.collection.failed) == (1, 1)
    sub = subscription(hub, sub_id)
    assert (sub.status, sub.mrr) == ("past_due", 10_000)  # past due still counts in MRR
    [first] = attempts(hub, invoice.id)
    assert (first.status, first.failure_code, first.amount) == ("failed", "card_declined", 12_500)
    assert first.next_attempt_at == at("2026-01-16 09:00")
    [after_first] = invoices(hub, sub_id)
    assert (after_first.first_failed_at, after_first.next_payment_attempt_at) == (
        START,
        at("2026-01-16 09:00"),
    )

    # Nothing happens between the retry days; each retry happens on its day.
    for day in SCHEDULE:
        just_before = at(day).replace(hour=8, minute=59, second=59)
        assert bill(hub, just_before).collection.attempted == 0
        report = bill(hub, day)
        assert report.collection.attempted == 1

    assert [a.attempted_at for a in attempts(hub, invoice.id)] == [START] + [at(day) for day in SCHEDULE]
    assert [a.next_attempt_at for a in attempts(hub, invoice.id)] == [at(day) for day in SCHEDULE] + [None]
    assert report.collection.canceled_subscriptions == [sub_id]

    sub = subscription(hub, sub_id)
    assert (sub.status, sub.cancel_reason, sub.canceled_at, sub.mrr) == (
        "canceled",
        "payment_failed",
        at("2026-01-22 09:00"),
        0,
    )
    [final] = invoices(hub, sub_id)
    assert (final.status, final.attempt_count, final.next_payment_attempt_at) == ("uncollectible", 5, None)
    assert revenue_state(hub, customer.id) == ("churned", 0)

    # Each step is recorded.
    assert event_types(hub, invoice.id, "invoice.") == [
        "invoice.issued",
        *["invoice.payment_failed"] * 5,
        "invoice.marked_uncollectible",
    ]
    assert event_types(hub, sub_id) == [
        "subscription.created",
        "subscription.past_due",
        "subscription.canceled",
    ]
    assert events(hub, sub_id, "subscription.canceled")[0].data["reason"] == "payment_failed"

    bill(hub, "2026-02-15 09:00")  # no renewal and no further attempts
    assert len(invoices(hub, sub_id)) == 1
    assert len(attempts(hub, invoice.id)) == 5


def test_a_card_that_recovers_on_the_third_attempt_brings_the_subscription_back(hub):
    customer, sub_id = declined_subscription(hub, "recover_after_2")
    [invoice] = invoices(hub, sub_id)
    bill(hub, START)
    bill(hub, SCHEDULE[0])
    assert subscription(hub, sub_id).status == "past_due"

    report = bill(hub, SCHEDULE[1])  # day 3: the third attempt succeeds
    assert (report.collection.attempted, report.collection.succeeded) == (1, 1)
    assert subscription(hub, sub_id).status == "active"
    [paid] = invoices(hub, sub_id)
    assert (paid.status, paid.amount_paid, paid.paid_at, paid.next_payment_attempt_at) == (
        "paid",
        12_500,
        at(SCHEDULE[1]),
        None,
    )
    assert [a.status for a in attempts(hub, invoice.id)] == ["failed", "failed", "succeeded"]
    assert event_types(hub, sub_id) == [
        "subscription.created",
        "subscription.past_due",
        "subscription.recovered",
    ]

    for day in SCHEDULE[2:]:
        assert bill(hub, day).collection.attempted == 0
    assert revenue_state(hub, customer.id) == ("active", 10_000)


def test_a_bank_transfer_during_dunning_also_recovers(hub, clock):
    _, sub_id = declined_subscription(hub)
    [invoice] = invoices(hub, sub_id)
    bill(hub, START)
    clock.set(at("2026-01-17 10:00"))
    record_payment(RecordPayment(invoice.id, 12_500, reference="bank"), hub.uow())
    assert subscription(hub, sub_id).status == "active"
    for day in SCHEDULE[1:]:
        assert bill(hub, day).collection.attempted == 0


def test_leave_past_due_keeps_the_subscription_and_the_invoice_after_the_last_retry(lenient):
    hub = lenient
    _, sub_id = declined_subscription(hub)
    [invoice] = invoices(hub, sub_id)
    for day in [START, *SCHEDULE]:
        bill(hub, day)

    sub = subscription(hub, sub_id)
    assert (sub.status, sub.canceled_at) == ("past_due", None)
    [unpaid] = invoices(hub, sub_id)
    assert (unpaid.status, unpaid.attempt_count, unpaid.next_payment_attempt_at) == ("open", 5, None)
    assert len(attempts(hub, invoice.id)) == 5
    assert bill(hub, "2026-01-30 09:00").collection.attempted == 0  # retries are spent

    # The period still renews (the subscription is not canceled) and its invoice is dunned anew.
    report = bill(hub, "2026-02-15 09:00")
    assert report.renewed == 1
    assert subscription(hub, sub_id).status == "past_due"
    renewal = invoices(hub, sub_id)[-1]
    assert renewal.period_start == at("2026-02-15 09:00")
    assert renewal.next_payment_attempt_at == at("2026-02-16 09:00")


def test_a_custom_retry_schedule(database):
    hub = make_hub(database, dunning_retry_days=(2,))
    wipe(hub)
    try:
        _, sub_id = declined_subscription(hub)
        [invoice] = invoices(hub, sub_id)
        bill(hub, START)
        assert bill(hub, "2026-01-16 09:00").collection.attempted == 0
        bill(hub, "2026-01-17 09:00")  # day 2: the only retry, and the last
        assert [a.attempted_at for a in attempts(hub, invoice.id)] == [START, at("2026-01-17 09:00")]
        assert subscription(hub, sub_id).status == "canceled"
    finally:
        hub.close()


def test_a_past_due_subscription_set_to_pause_does_not_stop_the_billing_run(lenient):
    hub = lenient
    _, stuck = declined_subscription(hub)
    subs.pause_subscription(subs.PauseSubscription(stuck, at_period_end=True), hub.uow())
    healthy_customer = factories.customer(hub, "Ole Hansen")
    healthy = factories.subscribe(hub, healthy_customer.id, factories.plan(hub, amount=5_000).id)
    for day in [START, *SCHEDULE]:
        bill(hub, day)
    assert subscription(hub, stuck).status == "past_due"

    report = bill(hub, "2026-02-15 09:00")  # both periods end now
    # A past-due subscription cannot pause (the state machine allows pausing only when active),
    # so it renews like any other; the healthy one is billed in the same run either way.
    assert subscription(hub, healthy).current_period_start == at("2026-02-15 09:00")
    assert subscription(hub, stuck).status == "past_due"
    assert report.renewed == 2


def test_a_card_updated_during_dunning_is_charged_on_the_next_retry(hub):
    customer, sub_id = declined_subscription(hub)
    bill(hub, START)
    customers.update_customer(
        customers.UpdateCustomer(customer.id, {"meta": {"payment_method": "ok"}}), hub.uow()
    )
    assert bill(hub, SCHEDULE[0]).collection.succeeded == 1
    assert subscription(hub, sub_id).status == "active"
