"""Changing plan: proration to the second, on the next invoice or invoiced now.

Most tests subscribe on 2026-04-01 00:00 UTC, so the first period is April: 30 days =
2 592 000 s. The change comes 10 days 3 hours 20 minutes in (876 000 s used, 1 716 000 s unused):

    credit for 100.00: 10 000 × 1 716 000 / 2 592 000 = 6 620.37 → 6 620, VAT 1 655.00 → 1 655
    charge for 200.00: 20 000 × 1 716 000 / 2 592 000 = 13 240.74 → 13 241, VAT 3 310.25 → 3 310
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub.domain.errors import InvalidRequest
from hub.services import catalog
from hub.services import subscriptions as subs
from hub.store.models import MrrMovement, PendingItem
from tests import factories
from tests.integration.support import at, bill, counts, events, invoices, lines_of, subscription, sums

APR_1 = at("2026-04-01 00:00")
MAY_1 = at("2026-05-01 00:00")
CHANGE = at("2026-04-11 03:20")


@pytest.fixture
def karen(hub):
    return factories.customer(hub)


@pytest.fixture
def small(hub):
    return factories.plan(hub, amount=10_000, name="Small")


@pytest.fixture
def large(hub):
    return factories.plan(hub, amount=20_000, name="Large")


def subscribe_on_apr_1(hub, customer_id, plan_id, **options):
    hub.clock.set(APR_1)
    return factories.subscribe(hub, customer_id, plan_id, **options)


def change(hub, sub_id, plan_id, when=CHANGE, **options):
    hub.clock.set(when)
    return subs.change_plan(subs.ChangePlan(sub_id, plan_id, **options), hub.uow())


def pending(hub, sub_id):
    with hub.session_factory() as session:
        return list(
            session.scalars(
                select(PendingItem.unit_amount).where(
                    PendingItem.subscription_id == sub_id, PendingItem.invoice_id.is_(None)
                )
            )
        )


def movements(hub, customer_id):
    with hub.session_factory() as session:
        rows = session.execute(
            select(MrrMovement.kind, MrrMovement.amount, MrrMovement.customer_mrr_after)
            .where(MrrMovement.customer_id == customer_id)
            .order_by(MrrMovement.id)
        )
        return [tuple(row) for row in rows]


def test_upgrade_prorated_on_the_next_invoice(hub, karen, small, large):
    sub_id = subscribe_on_apr_1(hub, karen.id, small.id)
    outcome = change(hub, sub_id, large.id)

    assert outcome.invoice_ids == []
    assert sorted(pending(hub, sub_id)) == [-6_620, 13_241]
    sub = subscription(hub, sub_id)
    assert (sub.plan_id, sub.mrr) == (large.id, 20_000)
    assert (sub.current_period_start, sub.current_period_end) == (APR_1, MAY_1)  # the period goes on

    bill(hub, MAY_1)
    renewal = invoices(hub, sub_id)[-1]
    assert renewal.billing_reason == "subscription_cycle"
    assert lines_of(renewal) == [
        ("subscription", 20_000, 0, 5_000, 25_000),
        ("proration", 13_241, 0, 3_310, 16_551),
        ("proration", -6_620, 0, -1_655, -8_275),
    ]
    # subtotal 20 000 + 13 241 − 6 620 = 26 621; VAT 5 000 + 3 310 − 1 655 = 6 655; total 33 276
    assert sums(renewal) == (26_621, 0, 6_655, 33_276)
    assert renewal.status == "paid"
    assert pending(hub, sub_id) == []

    bill(hub, "2026-06-01 00:00")
    assert sums(invoices(hub, sub_id)[-1]) == (20_000, 0, 5_000, 25_000)  # prorations are billed once


def test_upgrade_invoiced_now(hub, karen, small, large):
    sub_id = subscribe_on_apr_1(hub, karen.id, small.id)
    outcome = change(hub, sub_id, large.id, invoice_now=True)

    [_first, now] = invoices(hub, sub_id)
    assert outcome.invoice_ids == [now.id]
    assert (now.number, now.billing_reason, now.status) == ("INV-000002", "subscription_update", "open")
    assert (now.period_start, now.period_end) == (CHANGE, MAY_1)
    assert lines_of(now) == [
        ("proration", 13_241, 0, 3_310, 16_551),
        ("proration", -6_620, 0, -1_655, -8_275),
    ]
    # subtotal 13 241 − 6 620 = 6 621; VAT 3 310 − 1 655 = 1 655; total 8 276
    assert sums(now) == (6_621, 0, 1_655, 8_276)
    assert pending(hub, sub_id) == []

    bill(hub, MAY_1)
    assert sums(invoices(hub, sub_id)[-1]) == (20_000, 0, 5_000, 25_000)


def test_downgrade_prorated_on_the_next_invoice(hub, karen, small, large):
    sub_id = subscribe_on_apr_1(hub, karen.id, large.id)
    change(hub, sub_id, small.id)
    assert subscription(hub, sub_id).mrr == 10_000

    bill(hub, MAY_1)
    renewal = invoices(hub, sub_id)[-1]
    # credit 20 000 × 1 716 000 / 2 592 000 = 13 240.74 → 13 241 (VAT −3 310.25 → −3 310)
    # charge 10 000 × 1 716 000 / 2 592 000 = 6 620.37 → 6 620 (VAT 1 655)
    assert lines_of(renewal) == [
        ("subscription", 10_000, 0, 2_500, 12_500),
        ("proration", 6_620, 0, 1_655, 8_275),
        ("proration", -13_241, 0, -3_310, -16_551),
    ]
    # subtotal 10 000 + 6 620 − 13 241 = 3 379; VAT 2 500 + 1 655 − 3 310 = 845; total 4 224
    assert sums(renewal) == (3_379, 0, 845, 4_224)


def test_downgrade_invoiced_now_carries_the_rest_of_the_credit(hub, karen, small, large):
    sub_id = subscribe_on_apr_1(hub, karen.id, large.id)
    change(hub, sub_id, small.id, invoice_now=True)

    now = invoices(hub, sub_id)[-1]
    # The charge (6 620 + 1 655 VAT = 8 275) is met by as much of the 13 241 credit as fits:
    # 6 620 + 1 655 VAT = 8 275, so the invoice is 0 and 13 241 − 6 620 = 6 621 waits.
    assert lines_of(now) == [("proration", 6_620, 0, 1_655, 8_275), ("proration", -6_620, 0, -1_655, -8_275)]
    assert sums(now) == (0, 0, 0, 0)
    assert now.status == "paid"
    assert pending(hub, sub_id) == [-6_621]

    bill(hub, MAY_1)
    renewal = invoices(hub, sub_id)[-1]
    # 10 000 (VAT 2 500) − 6 621 (VAT −1 655.25 → −1 655): subtotal 3 379, VAT 845, total 4 224 —
    # the same as when the whole downgrade waits for the renewal.
    assert lines_of(renewal) == [
        ("subscription", 10_000, 0, 2_500, 12_500),
        ("proration", -6_621, 0, -1_655, -8_276),
    ]
    assert sums(renewal) == (3_379, 0, 845, 4_224)
    assert pending(hub, sub_id) == []


def test_a_credit_bigger_than_an_invoice_is_used_up_over_the_following_invoices(hub, karen):
    yearly = factories.plan(hub, amount=120_000, interval="year", name="Yearly")
    monthly = factories.plan(hub, amount=10_000, name="Monthly")
    hub.clock.set(at("2026-01-01 00:00"))
    sub_id = factories.subscribe(hub, karen.id, yearly.id)
    # 73 days into a 365-day year, 292 days are unused: 120 000 × 292 / 365 = 96 000 credit.
    change(hub, sub_id, monthly.id, when=at("2026-03-15 00:00"))

    switch = invoices(hub, sub_id)[-1]
    # 10 000 for the new month (12 500 with VAT) is met by 10 000 of the credit; 86 000 waits.
    assert lines_of(switch) == [
        ("subscription", 10_000, 0, 2_500, 12_500),
        ("proration", -10_000, 0, -2_500, -12_500),
    ]
    assert switch.total == 0
    assert pending(hub, sub_id) == [-86_000]

    totals = []
    for month in range(4, 13):  # 15 Apr … 15 Dec
        bill(hub, f"2026-{month:02d}-15 00:00")
        totals.append(invoices(hub, sub_id)[-1].total)
    bill(hub, "2027-01-15 00:00")
    totals.append(invoices(hub, sub_id)[-1].total)
    # Apr–Nov: 8 × 10 000 of credit used (86 000 → 6 000); Dec: 10 000 − 6 000 = 4 000 + 1 000 VAT.
    assert totals == [0, 0, 0, 0, 0, 0, 0, 0, 5_000, 12_500]
    assert pending(hub, sub_id) == []
    assert all(i.total >= 0 and i.amount_due >= 0 for i in invoices(hub, sub_id))


def test_changing_the_quantity_prorates_the_difference(hub, karen, small):
    sub_id = subscribe_on_apr_1(hub, karen.id, small.id)
    change(hub, sub_id, small.id, quantity=3, invoice_now=True)

    now = invoices(hub, sub_id)[-1]
    # charge 3 × 10 000 × 1 716 000 / 2 592 000 = 19 861.11 → 19 861, VAT 4 965.25 → 4 965
    assert lines_of(now) == [
        ("proration", 19_861, 0, 4_965, 24_826),
        ("proration", -6_620, 0, -1_655, -8_275),
    ]
    assert sums(now) == (13_241, 0, 3_310, 16_551)
    sub = subscription(hub, sub_id)
    assert (sub.quantity, sub.mrr) == (3, 30_000)
    bill(hub, MAY_1)
    assert lines_of(invoices(hub, sub_id)[-1]) == [("subscription", 30_000, 0, 7_500, 37_500)]


def test_without_proration_the_new_price_starts_at_the_renewal(hub, karen, small, large):
    sub_id = subscribe_on_apr_1(hub, karen.id, small.id)
    outcome = change(hub, sub_id, large.id, prorate=False, invoice_now=True)
    assert outcome.invoice_ids == []
    assert pending(hub, sub_id) == []
    assert subscription(hub, sub_id).mrr == 20_000
    bill(hub, MAY_1)
    assert lines_of(invoices(hub, sub_id)[-1]) == [("subscription", 20_000, 0, 5_000, 25_000)]


def test_monthly_to_yearly_restarts_the_period_and_invoices_now(hub, karen, small):
    yearly = factories.plan(hub, amount=100_000, interval="year", name="Yearly")
    sub_id = subscribe_on_apr_1(hub, karen.id, small.id)
    outcome = change(hub, sub_id, yearly.id)

    sub = subscription(hub, sub_id)
    assert (sub.current_period_start, sub.current_period_end) == (CHANGE, at("2027-04-11 03:20"))
    assert sub.billing_anchor == CHANGE
    assert sub.mrr == 8_333  # 100 000 / 12 = 8 333.33
    [now] = [i for i in invoices(hub, sub_id) if i.id in outcome.invoice_ids]
    assert now.billing_reason == "subscription_update"
    assert (now.period_start, now.period_end) == (CHANGE, at("2027-04-11 03:20"))
    assert lines_of(now) == [
        ("subscription", 100_000, 0, 25_000, 125_000),
        ("proration", -6_620, 0, -1_655, -8_275),  # unused April on the monthly plan
    ]
    # subtotal 100 000 − 6 620 = 93 380; VAT 25 000 − 1 655 = 23 345; total 116 725
    assert sums(now) == (93_380, 0, 23_345, 116_725)

    assert bill(hub, "2027-04-11 03:19:59").renewed == 0
    assert bill(hub, "2027-04-11 03:20").renewed == 1
    assert invoices(hub, sub_id)[-1].period_end == at("2028-04-11 03:20")


def test_yearly_to_quarterly_without_proration_restarts_without_credit(hub, karen):
    yearly = factories.plan(hub, amount=100_000, interval="year", name="Yearly")
    quarterly = factories.plan(hub, amount=30_000, interval="quarter", name="Quarterly")
    sub_id = subscribe_on_apr_1(hub, karen.id, yearly.id)
    change(hub, sub_id, quarterly.id, prorate=False)
    now = invoices(hub, sub_id)[-1]
    assert lines_of(now) == [("subscription", 30_000, 0, 7_500, 37_500)]
    assert now.period_end == at("2026-07-11 03:20")
    assert subscription(hub, sub_id).mrr == 10_000  # 30 000 / 3


def test_a_change_during_the_trial_changes_what_the_trial_ends_in(hub, karen, small):
    yearly = factories.plan(hub, amount=100_000, interval="year", name="Yearly")
    sub_id = subscribe_on_apr_1(hub, karen.id, small.id, trial_days=14)
    outcome = change(hub, sub_id, yearly.id, when=at("2026-04-05 00:00"))

    assert outcome.invoice_ids == []
    assert invoices(hub, sub_id) == []
    assert pending(hub, sub_id) == []
    sub = subscription(hub, sub_id)
    assert (sub.status, sub.plan_id, sub.trial_end, sub.mrr) == (
        "trialing",
        yearly.id,
        at("2026-04-15 00:00"),
        0,
    )

    bill(hub, "2026-04-15 00:00")
    [first] = invoices(hub, sub_id)
    assert lines_of(first) == [("subscription", 100_000, 0, 25_000, 125_000)]
    assert (first.period_start, first.period_end) == (at("2026-04-15 00:00"), at("2027-04-15 00:00"))


def test_a_change_after_the_period_ended_but_before_the_renewal_is_not_prorated(hub, karen, small, large):
    sub_id = subscribe_on_apr_1(hub, karen.id, small.id)
    # The period ended at midnight; the billing run has not renewed it yet.
    change(hub, sub_id, large.id, when=at("2026-05-01 00:30"))
    assert pending(hub, sub_id) == []
    bill(hub, "2026-05-01 01:00")
    renewal = invoices(hub, sub_id)[-1]
    assert (renewal.period_start, renewal.period_end) == (MAY_1, at("2026-06-01 00:00"))
    assert lines_of(renewal) == [("subscription", 20_000, 0, 5_000, 25_000)]


def test_preview_shows_the_lines_and_changes_nothing(hub, karen, small, large):
    sub_id = subscribe_on_apr_1(hub, karen.id, small.id)
    hub.clock.set(CHANGE)
    before = counts(hub)
    preview = subs.preview_change(subs.ChangePlan(sub_id, large.id, invoice_now=True), hub.uow())
    assert sorted(line.amount for line in preview.lines) == [-6_620, 13_241]
    assert preview.total == 8_276  # 16 551 − 8 275
    assert preview.invoice_now is True
    assert counts(hub) == before
    assert subscription(hub, sub_id).plan_id == small.id


def test_plan_changes_move_mrr_as_expansion_and_contraction(hub, karen, small, large):
    sub_id = subscribe_on_apr_1(hub, karen.id, small.id)
    change(hub, sub_id, large.id)
    change(hub, sub_id, small.id, when=at("2026-04-20 00:00"))
    assert movements(hub, karen.id) == [
        ("new", 10_000, 10_000),
        ("expansion", 10_000, 20_000),
        ("contraction", -10_000, 10_000),
    ]
    changed = events(hub, sub_id, "subscription.plan_changed")
    assert [(e.data["from_plan_id"], e.data["to_plan_id"]) for e in changed] == [
        (small.id, large.id),
        (large.id, small.id),
    ]
    assert changed[0].data["before"]["plan_id"] == small.id
    assert changed[0].data["after"]["plan_id"] == large.id


def test_a_change_to_nothing_new_is_refused(hub, karen, small):
    sub_id = subscribe_on_apr_1(hub, karen.id, small.id)
    with pytest.raises(InvalidRequest):
        change(hub, sub_id, small.id)


def test_a_plan_in_another_currency_or_archived_is_refused(hub, karen, small):
    euro = factories.plan(hub, amount=1_000, currency="EUR", name="Euro")
    old = factories.plan(hub, amount=5_000, name="Old")
    catalog.update_plan(catalog.Update(old.id, {"active": False}), hub.uow())
    sub_id = subscribe_on_apr_1(hub, karen.id, small.id)
    before = counts(hub)
    for plan_id in (euro.id, old.id, "plan_missing"):
        with pytest.raises(InvalidRequest) as caught:
            change(hub, sub_id, plan_id)
        assert "plan_id" in caught.value.fields
    assert counts(hub) == before


def test_an_upgrade_waiting_for_the_next_invoice_is_still_billed_when_the_subscription_cancels(
    hub, karen, small, large
):
    sub_id = subscribe_on_apr_1(hub, karen.id, small.id)
    change(hub, sub_id, large.id)  # +13 241 − 6 620 waits for the May invoice
    hub.clock.set(at("2026-04-20 00:00"))
    subs.cancel_subscription(subs.CancelSubscription(sub_id, "too_expensive", at_period_end=True), hub.uow())

    report = bill(hub, MAY_1)
    assert report.canceled == 1
    final = invoices(hub, sub_id)[-1]
    assert final.billing_reason == "subscription_final"
    assert lines_of(final) == [
        ("proration", 13_241, 0, 3_310, 16_551),
        ("proration", -6_620, 0, -1_655, -8_275),
    ]
    assert sums(final) == (6_621, 0, 1_655, 8_276)
    assert pending(hub, sub_id) == []


def test_an_upgrade_waiting_for_the_next_invoice_is_billed_at_once_when_canceled_now(
    hub, karen, small, large
):
    sub_id = subscribe_on_apr_1(hub, karen.id, small.id)
    change(hub, sub_id, large.id)
    hub.clock.set(at("2026-04-20 00:00"))
    outcome = subs.cancel_subscription(subs.CancelSubscription(sub_id, "unused"), hub.uow())
    final = invoices(hub, sub_id)[-1]
    assert outcome.invoice_ids == [final.id]
    assert (final.billing_reason, final.period_start) == ("subscription_final", at("2026-04-20 00:00"))
    assert sums(final) == (6_621, 0, 1_655, 8_276)  # 13 241 − 6 620, VAT 3 310 − 1 655
