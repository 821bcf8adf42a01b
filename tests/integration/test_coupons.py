"""Coupons: percent or amount, once / for N periods / forever, redemption limits and currency.

A monthly plan of 100.00 DKK (10 000 øre) + 25 % VAT, subscribed on 2026-01-15 09:00 UTC.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from hub.domain.errors import InvalidRequest
from hub.services import catalog
from hub.services import subscriptions as subs
from hub.store.models import Coupon
from tests import factories
from tests.integration.support import at, attempts, bill, counts, invoices, lines_of, subscription

RENEWALS = ["2026-02-15 09:00", "2026-03-15 09:00", "2026-04-15 09:00", "2026-05-15 09:00"]


@pytest.fixture
def karen(hub):
    return factories.customer(hub)


@pytest.fixture
def monthly(hub):
    return factories.plan(hub, amount=10_000, name="Monthly")


def coupon(hub, code, duration, **kw):
    return catalog.create_coupon(
        catalog.CreateCoupon(code=code, name=code, duration=duration, **kw), hub.uow()
    )


def redeemed(hub, code):
    with hub.session_factory() as session:
        return session.scalar(select(Coupon.times_redeemed).where(Coupon.code == code))


def recurring_lines(hub, sub_id):
    return [lines_of(i)[0] for i in invoices(hub, sub_id)]


FULL = ("subscription", 10_000, 0, 2_500, 12_500)


def test_a_percent_coupon_once_discounts_only_the_first_invoice(hub, karen, monthly):
    coupon(hub, "WELCOME10", "once", percent_off=Decimal("10"))
    sub_id = factories.subscribe(hub, karen.id, monthly.id, coupon_code="WELCOME10")
    bill(hub, RENEWALS[0])
    # 10 % of 10 000 = 1 000; net 9 000; VAT 2 250; total 11 250
    assert recurring_lines(hub, sub_id) == [("subscription", 10_000, 1_000, 2_250, 11_250), FULL]
    first = invoices(hub, sub_id)[0]
    assert (first.subtotal, first.discount, first.vat, first.total) == (10_000, 1_000, 2_250, 11_250)
    assert subscription(hub, sub_id).mrr == 10_000  # a coupon that runs out is not in MRR
    assert redeemed(hub, "WELCOME10") == 1


def test_an_amount_coupon_repeating_for_three_periods(hub, karen, monthly):
    coupon(hub, "THREE25", "repeating", amount_off=2_500, currency="DKK", duration_periods=3)
    sub_id = factories.subscribe(hub, karen.id, monthly.id, coupon_code="THREE25")
    assert subscription(hub, sub_id).coupon_periods_left == 2
    for day in RENEWALS:
        bill(hub, day)
    # 10 000 − 2 500 = 7 500 net; VAT 1 875; total 9 375 — for periods 1, 2 and 3, then full price.
    discounted = ("subscription", 10_000, 2_500, 1_875, 9_375)
    assert recurring_lines(hub, sub_id) == [discounted, discounted, discounted, FULL, FULL]
    assert subscription(hub, sub_id).coupon_periods_left == 0


def test_a_forever_coupon_discounts_every_invoice_and_lowers_mrr(hub, karen, monthly):
    coupon(hub, "LOYAL20", "forever", percent_off=Decimal("20"))
    sub_id = factories.subscribe(hub, karen.id, monthly.id, quantity=3, coupon_code="LOYAL20")
    for day in RENEWALS[:2]:
        bill(hub, day)
    # 3 × 10 000 = 30 000; 20 % = 6 000; net 24 000; VAT 6 000; total 30 000
    assert recurring_lines(hub, sub_id) == [("subscription", 30_000, 6_000, 6_000, 30_000)] * 3
    assert subscription(hub, sub_id).mrr == 24_000


def test_a_coupon_applied_later_as_a_loyalty_reward(hub, clock, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    coupon(hub, "THANKS50", "forever", percent_off=Decimal("50"))
    clock.set(at("2026-02-01 00:00"))
    subs.apply_coupon(subs.ApplyCoupon(sub_id, "THANKS50"), hub.uow())

    assert subscription(hub, sub_id).mrr == 5_000  # 10 000 − 50 %
    assert recurring_lines(hub, sub_id) == [FULL]  # the invoice already issued is unchanged
    bill(hub, RENEWALS[0])
    # 50 % of 10 000 = 5 000; net 5 000; VAT 1 250; total 6 250
    assert recurring_lines(hub, sub_id) == [FULL, ("subscription", 10_000, 5_000, 1_250, 6_250)]


def test_a_coupon_with_a_trial_discounts_the_first_paid_period(hub, karen):
    plan = factories.plan(hub, amount=10_000, trial_days=14)
    coupon(hub, "TRY", "once", amount_off=1_000, currency="DKK")
    sub_id = factories.subscribe(hub, karen.id, plan.id, coupon_code="TRY")
    bill(hub, "2026-01-29 09:00")  # the trial ends
    bill(hub, "2026-02-28 09:00")
    # 10 000 − 1 000 = 9 000; VAT 2 250; total 11 250, then full price
    assert recurring_lines(hub, sub_id) == [("subscription", 10_000, 1_000, 2_250, 11_250), FULL]


def test_a_discount_bigger_than_the_price_makes_a_free_invoice_that_needs_no_payment(hub, karen, monthly):
    coupon(hub, "FREE", "once", amount_off=50_000, currency="DKK")
    sub_id = factories.subscribe(hub, karen.id, monthly.id, coupon_code="FREE")
    [invoice] = invoices(hub, sub_id)
    assert lines_of(invoice) == [("subscription", 10_000, 10_000, 0, 0)]
    assert (invoice.total, invoice.status) == (0, "paid")
    bill(hub, "2026-01-16 00:00")
    assert attempts(hub, invoice.id) == []


def test_max_redemptions_is_enforced_and_a_refused_subscription_redeems_nothing(hub, karen, monthly):
    coupon(hub, "ONLYONE", "once", percent_off=Decimal("10"), max_redemptions=1)
    factories.subscribe(hub, karen.id, monthly.id, coupon_code="ONLYONE")
    before = counts(hub)
    with pytest.raises(InvalidRequest) as caught:
        factories.subscribe(hub, karen.id, monthly.id, coupon_code="ONLYONE")
    assert "coupon_code" in caught.value.fields
    assert counts(hub) == before
    assert redeemed(hub, "ONLYONE") == 1


def test_an_amount_coupon_in_another_currency_is_refused(hub, karen, monthly):
    coupon(hub, "EURO5", "once", amount_off=500, currency="EUR")
    with pytest.raises(InvalidRequest) as caught:
        factories.subscribe(hub, karen.id, monthly.id, coupon_code="EURO5")
    assert caught.value.fields["coupon_code"] == ["is for EUR, the subscription is in DKK"]
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    with pytest.raises(InvalidRequest):
        subs.apply_coupon(subs.ApplyCoupon(sub_id, "EURO5"), hub.uow())
    assert redeemed(hub, "EURO5") == 0


def test_an_expired_an_archived_or_an_unknown_coupon_is_refused(hub, karen, monthly):
    coupon(hub, "OLD", "once", percent_off=Decimal("10"), redeem_by=at("2026-01-15 09:00"))
    archived = coupon(hub, "GONE", "once", percent_off=Decimal("10"))
    catalog.update_coupon(catalog.Update(archived.id, {"active": False}), hub.uow())
    for code in ("OLD", "GONE", "NOSUCH"):
        with pytest.raises(InvalidRequest) as caught:
            factories.subscribe(hub, karen.id, monthly.id, coupon_code=code)
        assert "coupon_code" in caught.value.fields
    assert counts(hub)["subscriptions"] == 0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (
            {"duration": "once", "percent_off": Decimal("10"), "amount_off": 100, "currency": "DKK"},
            "percent_off",
        ),
        ({"duration": "once"}, "percent_off"),
        ({"duration": "once", "amount_off": 100}, "currency"),
        ({"duration": "repeating", "percent_off": Decimal("10")}, "duration_periods"),
        ({"duration": "forever", "percent_off": Decimal("10"), "duration_periods": 3}, "duration_periods"),
    ],
)
def test_an_invalid_coupon_is_refused(hub, options, field):
    with pytest.raises(InvalidRequest) as caught:
        coupon(hub, "BAD", **options)
    assert field in caught.value.fields


def test_a_coupon_code_is_unique(hub):
    coupon(hub, "SAME", "once", percent_off=Decimal("10"))
    with pytest.raises(InvalidRequest) as caught:
        coupon(hub, "SAME", "forever", percent_off=Decimal("5"))
    assert "code" in caught.value.fields
