"""MRR of one subscription and how a change to a customer moves it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hub.domain.invoicing import Discount
from hub.domain.mrr import Classified, CustomerState, Movement, classify, customer_state, subscription_mrr

NONE, ACTIVE, PAUSED, CHURNED = (
    CustomerState.NONE,
    CustomerState.ACTIVE,
    CustomerState.PAUSED,
    CustomerState.CHURNED,
)


# --- one subscription ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit_amount", "quantity", "months", "expected"),
    [
        (10_000, 1, 1, 10_000),  # monthly: as is
        (30_000, 1, 3, 10_000),  # quarterly 300.00 → 100.00 a month
        (10_000, 1, 3, 3_333),  # 3 333.33 → 3 333
        (20_000, 1, 3, 6_667),  # 6 666.67 → 6 667
        (120_000, 1, 12, 10_000),  # yearly
        (100_000, 1, 12, 8_333),  # 8 333.33 → 8 333
        (15_001, 1, 2, 7_501),  # every 2 months: 7 500.5 → 7 501 (half away from zero)
        (9_900, 3, 1, 29_700),  # quantity 3 × 99.00
        (10_000, 2, 12, 1_667),  # 20 000 / 12 = 1 666.67 → 1 667
    ],
)
def test_mrr_is_normalised_to_a_month(unit_amount, quantity, months, expected):
    assert subscription_mrr("active", unit_amount, quantity, months) == expected


@pytest.mark.parametrize("status", ["active", "past_due"])
def test_active_and_past_due_count(status):
    assert subscription_mrr(status, 10_000, 1, 1) == 10_000


@pytest.mark.parametrize("status", ["trialing", "paused", "canceled"])
def test_trials_pauses_and_cancellations_are_zero(status):
    assert subscription_mrr(status, 10_000, 1, 1) == 0


def test_a_forever_coupon_reduces_mrr_before_normalising():
    # yearly 120 000 less 20 % = 96 000; / 12 = 8 000
    assert subscription_mrr("active", 120_000, 1, 12, Discount(percent_off=Decimal("20"))) == 8_000
    # monthly 2 × 10 000 = 20 000 less 2 500 = 17 500
    assert subscription_mrr("active", 10_000, 2, 1, Discount(amount_off=2_500)) == 17_500
    # quarterly 10 000 less 10 % = 9 000; / 3 = 3 000
    assert subscription_mrr("active", 10_000, 1, 3, Discount(percent_off=Decimal("10"))) == 3_000
    # a discount bigger than the price leaves 0, never a negative MRR
    assert subscription_mrr("active", 10_000, 1, 1, Discount(amount_off=50_000)) == 0


# --- a customer's state ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "previous", "mrr", "expected"),
    [
        ([], NONE, 0, NONE),
        (["trialing"], NONE, 0, NONE),  # a trial is not yet a paying customer
        (["active"], NONE, 9_900, ACTIVE),
        (["past_due"], NONE, 9_900, ACTIVE),
        (["paused"], ACTIVE, 0, PAUSED),
        (["paused", "active"], ACTIVE, 9_900, ACTIVE),  # one counting subscription is enough
        (["canceled"], ACTIVE, 0, CHURNED),
        (["canceled"], PAUSED, 0, CHURNED),
        (["canceled", "trialing"], ACTIVE, 0, CHURNED),  # a new trial does not undo churn
        (["canceled"], CHURNED, 0, CHURNED),
        (["canceled"], NONE, 0, NONE),  # a trial canceled before paying never churned
        (["canceled", "active"], CHURNED, 9_900, ACTIVE),
        (["active"], NONE, 0, NONE),  # a free plan does not make a paying customer
        (["active"], ACTIVE, 0, CHURNED),  # a 100 % forever coupon: they stopped paying
        (["active", "paused"], ACTIVE, 0, PAUSED),  # free plan beside a paused one
    ],
)
def test_customer_state(statuses, previous, mrr, expected):
    assert customer_state(statuses, previous, mrr) is expected


# --- movements --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "before_mrr", "after_mrr", "expected"),
    [
        (NONE, ACTIVE, 0, 10_000, Classified(Movement.NEW, active_delta=1, churn_delta=0)),
        (ACTIVE, ACTIVE, 10_000, 20_000, Classified(Movement.EXPANSION, 0, 0)),
        (ACTIVE, ACTIVE, 20_000, 10_000, Classified(Movement.CONTRACTION, 0, 0)),
        (ACTIVE, CHURNED, 10_000, 0, Classified(Movement.CHURNED, -1, 1)),
        (PAUSED, CHURNED, 0, 0, Classified(Movement.CHURNED, 0, 1)),
        (CHURNED, ACTIVE, 0, 10_000, Classified(Movement.REACTIVATION, 1, -1)),
        (ACTIVE, PAUSED, 10_000, 0, Classified(Movement.PAUSED, -1, 0)),
        (PAUSED, ACTIVE, 0, 10_000, Classified(Movement.RESUMED, 1, 0)),
    ],
)
def test_classify(before, after, before_mrr, after_mrr, expected):
    assert classify(before, after, before_mrr, after_mrr) == expected


@pytest.mark.parametrize(
    ("before", "after", "before_mrr", "after_mrr"),
    [
        (ACTIVE, ACTIVE, 10_000, 10_000),  # nothing changed (e.g. a renewal)
        (NONE, NONE, 0, 0),  # a trial started or ended unpaid
        (CHURNED, CHURNED, 0, 0),
        (PAUSED, PAUSED, 0, 0),
    ],
)
def test_no_movement_when_nothing_moved(before, after, before_mrr, after_mrr):
    assert classify(before, after, before_mrr, after_mrr) is None
