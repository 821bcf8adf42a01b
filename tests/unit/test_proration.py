"""Proration to the second, with amounts worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.domain.proration import prorate_change, prorate_restart, share

# A 30-day period: April 2026 (30 × 86 400 = 2 592 000 seconds).
APR_1 = datetime(2026, 4, 1, tzinfo=UTC)
MAY_1 = datetime(2026, 5, 1, tzinfo=UTC)
# 10 days 3 hours 20 minutes in: 864 000 + 10 800 + 1 200 = 876 000 s used, 1 716 000 s unused.
CHANGE = APR_1 + timedelta(days=10, hours=3, minutes=20)


def test_upgrade_after_ten_days_three_hours_twenty_minutes():
    p = prorate_change(10_000, 20_000, APR_1, MAY_1, CHANGE)
    assert p.period_seconds == 2_592_000
    assert p.unused_seconds == 1_716_000
    # credit: 10 000 × 1 716 000 / 2 592 000 = 6 620.370… → 6 620
    assert p.credit == -6_620
    # charge: 20 000 × 1 716 000 / 2 592 000 = 13 240.740… → 13 241
    assert p.charge == 13_241
    assert p.net == 6_621  # 13 241 − 6 620


def test_downgrade_is_the_mirror_image():
    p = prorate_change(20_000, 10_000, APR_1, MAY_1, CHANGE)
    assert (p.credit, p.charge, p.net) == (-13_241, 6_620, -6_621)


def test_one_second_later_is_one_second_less_unused():
    p = prorate_change(2_592_000, 0, APR_1, MAY_1, CHANGE + timedelta(seconds=1))
    # 2 592 000 øre over 2 592 000 s is 1 øre per second: 1 715 999 s unused → 1 715 999 øre.
    assert p.unused_seconds == 1_715_999
    assert p.credit == -1_715_999
    assert p.charge == 0


def test_exact_halves_round_away_from_zero():
    half = APR_1 + timedelta(days=15)  # 1 296 000 of 2 592 000 s unused: exactly one half
    p = prorate_change(10_001, 10_003, APR_1, MAY_1, half)
    assert p.credit == -5_001  # −10 001 / 2 = −5 000.5 → −5 001 (away from zero, not to even)
    assert p.charge == 5_002  # 10 003 / 2 = 5 001.5 → 5 002
    p = prorate_change(1, 3, APR_1, MAY_1, half)
    assert (p.credit, p.charge) == (-1, 2)  # −0.5 → −1; 1.5 → 2


def test_just_below_a_half_rounds_down():
    # 1 øre for 1 295 999 of 2 592 000 s = 0.49999… → 0
    at = APR_1 + timedelta(days=15, seconds=1)
    assert prorate_change(1, 1, APR_1, MAY_1, at).credit == 0


def test_a_change_at_the_start_credits_and_charges_the_whole_period():
    p = prorate_change(10_000, 20_000, APR_1, MAY_1, APR_1)
    assert (p.credit, p.charge, p.unused_seconds) == (-10_000, 20_000, 2_592_000)


def test_a_change_at_the_end_moves_nothing():
    p = prorate_change(10_000, 20_000, APR_1, MAY_1, MAY_1)
    assert (p.credit, p.charge, p.unused_seconds) == (0, 0, 0)


def test_february_is_a_28_day_period():
    feb_1, mar_1 = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    p = prorate_change(10_000, 30_000, feb_1, mar_1, feb_1 + timedelta(days=7))
    # 21 of 28 days unused = 3/4: credit 7 500, charge 22 500, exact.
    assert (p.period_seconds, p.unused_seconds) == (2_419_200, 1_814_400)
    assert (p.credit, p.charge) == (-7_500, 22_500)


def test_a_leap_february_is_29_days():
    feb_1, mar_1 = datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)
    p = prorate_change(2_900, 0, feb_1, mar_1, feb_1 + timedelta(days=19))
    # 10 of 29 days unused: 2 900 × 10 / 29 = 1 000 exactly.
    assert p.credit == -1_000


@pytest.mark.parametrize("at", [APR_1 - timedelta(seconds=1), MAY_1 + timedelta(seconds=1)])
def test_a_change_outside_the_period_is_refused(at):
    with pytest.raises(ValueError):
        prorate_change(10_000, 20_000, APR_1, MAY_1, at)


def test_restart_credits_only_the_unused_part_of_the_old_period():
    assert prorate_restart(10_000, APR_1, MAY_1, CHANGE) == -6_620  # as in the upgrade above
    assert prorate_restart(10_000, APR_1, MAY_1, MAY_1) == 0


def test_a_year_credit_to_the_second():
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    # 365 days = 31 536 000 s; a change after 73 days leaves 292 days = 25 228 800 s unused.
    # 120 000 × 25 228 800 / 31 536 000 = 96 000 exactly (292/365 = 0.8).
    assert prorate_restart(120_000, start, end, start + timedelta(days=73)) == -96_000


def test_share_rounds_once():
    assert share(10, 1, 3) == 3  # 3.33 → 3
    assert share(20, 1, 3) == 7  # 6.67 → 7
    assert share(-15, 1, 2) == -8  # −7.5 → −8
