"""Billing-cycle anchoring: month ends, leap years, every-N-months and the billing time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.domain.calendar import add_months, months_per_period, period_end_after, seconds_between

CPH = "Europe/Copenhagen"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def chain(anchor: datetime, months: int, periods: int, tz: str = "UTC") -> list[str]:
    """The next ``periods`` renewals, each found from the previous one (as the billing run does)."""
    found, current = [], anchor
    for _ in range(periods):
        current = period_end_after(anchor, months, current, tz)
        found.append(current.isoformat())
    return found


# --- period lengths ------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "count", "months"),
    [
        ("month", 1, 1),
        ("quarter", 1, 3),
        ("year", 1, 12),
        ("month", 2, 2),
        ("month", 6, 6),
        ("quarter", 2, 6),
    ],
)
def test_months_per_period(interval, count, months):
    assert months_per_period(interval, count) == months


def test_a_period_of_zero_months_is_refused():
    with pytest.raises(ValueError):
        months_per_period("month", 0)


def test_an_unknown_interval_is_refused():
    with pytest.raises(ValueError):
        months_per_period("week")


# --- month ends across a leap year ----------------------------------------------


def test_monthly_from_jan_31_in_a_leap_year_keeps_the_month_end():
    assert chain(utc("2024-01-31T10:00:00"), 1, 13) == [
        "2024-02-29T10:00:00+00:00",  # leap year: 29 days
        "2024-03-31T10:00:00+00:00",  # back to the 31st, not stuck on the 29th
        "2024-04-30T10:00:00+00:00",
        "2024-05-31T10:00:00+00:00",
        "2024-06-30T10:00:00+00:00",
        "2024-07-31T10:00:00+00:00",
        "2024-08-31T10:00:00+00:00",
        "2024-09-30T10:00:00+00:00",
        "2024-10-31T10:00:00+00:00",
        "2024-11-30T10:00:00+00:00",
        "2024-12-31T10:00:00+00:00",
        "2025-01-31T10:00:00+00:00",
        "2025-02-28T10:00:00+00:00",  # not a leap year: 28 days
    ]


def test_monthly_from_jan_31_in_a_common_year():
    assert chain(utc("2025-01-31T00:00:00"), 1, 3) == [
        "2025-02-28T00:00:00+00:00",
        "2025-03-31T00:00:00+00:00",
        "2025-04-30T00:00:00+00:00",
    ]


def test_add_months_counts_from_the_anchor_not_from_the_previous_end():
    anchor = utc("2024-01-31T10:00:00")
    assert add_months(anchor, 1) == utc("2024-02-29T10:00:00")
    assert add_months(anchor, 2) == utc("2024-03-31T10:00:00")
    # Adding a month to Feb 29 itself would give Mar 29: the anchor's day is what counts.
    assert add_months(utc("2024-02-29T10:00:00"), 1) == utc("2024-03-29T10:00:00")


def test_monthly_from_the_30th_goes_through_february_and_back():
    assert chain(utc("2023-12-30T08:00:00"), 1, 3) == [
        "2024-01-30T08:00:00+00:00",
        "2024-02-29T08:00:00+00:00",
        "2024-03-30T08:00:00+00:00",
    ]


def test_quarterly_from_feb_29_2024_lands_on_feb_28_2025():
    assert chain(utc("2024-02-29T12:00:00"), 3, 4) == [
        "2024-05-29T12:00:00+00:00",
        "2024-08-29T12:00:00+00:00",
        "2024-11-29T12:00:00+00:00",
        "2025-02-28T12:00:00+00:00",
    ]


def test_yearly_from_feb_29_2024_is_feb_28_until_the_next_leap_year():
    assert chain(utc("2024-02-29T12:00:00"), 12, 4) == [
        "2025-02-28T12:00:00+00:00",
        "2026-02-28T12:00:00+00:00",
        "2027-02-28T12:00:00+00:00",
        "2028-02-29T12:00:00+00:00",
    ]


def test_quarterly_from_nov_30_meets_a_leap_february():
    assert chain(utc("2023-11-30T00:00:00"), 3, 3) == [
        "2024-02-29T00:00:00+00:00",
        "2024-05-30T00:00:00+00:00",
        "2024-08-30T00:00:00+00:00",
    ]


def test_every_two_months_from_dec_31():
    assert chain(utc("2023-12-31T06:00:00"), 2, 4) == [
        "2024-02-29T06:00:00+00:00",
        "2024-04-30T06:00:00+00:00",
        "2024-06-30T06:00:00+00:00",
        "2024-08-31T06:00:00+00:00",
    ]


def test_every_five_months_from_sep_30():
    assert chain(utc("2023-09-30T00:00:00"), 5, 2) == [
        "2024-02-29T00:00:00+00:00",
        "2024-07-30T00:00:00+00:00",
    ]


# --- where inside a period "after" falls -----------------------------------------


def test_the_boundary_itself_belongs_to_the_next_period():
    anchor = utc("2024-01-31T10:00:00")
    assert period_end_after(anchor, 1, utc("2024-02-29T09:59:59"), "UTC") == utc("2024-02-29T10:00:00")
    assert period_end_after(anchor, 1, utc("2024-02-29T10:00:00"), "UTC") == utc("2024-03-31T10:00:00")


def test_a_moment_far_after_the_anchor_finds_the_right_period():
    anchor = utc("2024-01-31T10:00:00")
    # 2025-03-01 is after Feb 28 2025 and before Mar 31 2025.
    assert period_end_after(anchor, 1, utc("2025-03-01T00:00:00"), "UTC") == utc("2025-03-31T10:00:00")
    # Quarterly: Jan 31 → Apr 30 → Jul 31 → Oct 31 → Jan 31 2025; Nov 15 2024 is in the Oct 31 period.
    assert period_end_after(anchor, 3, utc("2024-11-15T00:00:00"), "UTC") == utc("2025-01-31T10:00:00")


def test_a_moment_before_the_anchor_gives_the_anchor():
    anchor = utc("2024-01-31T10:00:00")
    assert period_end_after(anchor, 1, utc("2024-01-01T00:00:00"), "UTC") == anchor


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        period_end_after(datetime(2024, 1, 31), 1, datetime(2024, 2, 1), "UTC")


# --- the billing time zone -------------------------------------------------------


def test_copenhagen_keeps_the_wall_time_across_both_dst_changes():
    # Anchor 2024-01-31 10:00 UTC = 11:00 CET (UTC+1). DST starts 2024-03-31 02:00 and
    # ends 2024-10-27 03:00, so 11:00 local is 09:00 UTC from April to October.
    assert chain(utc("2024-01-31T10:00:00"), 1, 10, CPH) == [
        "2024-02-29T10:00:00+00:00",  # 11:00 CET
        "2024-03-31T09:00:00+00:00",  # 11:00 CEST, on the very day DST starts
        "2024-04-30T09:00:00+00:00",
        "2024-05-31T09:00:00+00:00",
        "2024-06-30T09:00:00+00:00",
        "2024-07-31T09:00:00+00:00",
        "2024-08-31T09:00:00+00:00",
        "2024-09-30T09:00:00+00:00",
        "2024-10-31T10:00:00+00:00",  # 11:00 CET again
        "2024-11-30T10:00:00+00:00",
    ]


def test_the_month_end_is_read_in_the_billing_time_zone():
    # 2024-01-30 23:30 UTC is already Jan 31 00:30 in Copenhagen: a month-end anchor there.
    anchor = utc("2024-01-30T23:30:00")
    assert chain(anchor, 1, 3, CPH) == [
        "2024-02-28T23:30:00+00:00",  # Feb 29 00:30 CET
        "2024-03-30T23:30:00+00:00",  # Mar 31 00:30 CET (DST starts at 02:00, later that night)
        "2024-04-29T22:30:00+00:00",  # Apr 30 00:30 CEST
    ]
    # In UTC the same moment is Jan 30, so it renews on the 30th (Feb 29 being the last day).
    assert chain(anchor, 1, 3, "UTC") == [
        "2024-02-29T23:30:00+00:00",
        "2024-03-30T23:30:00+00:00",
        "2024-04-30T23:30:00+00:00",
    ]


def test_local_midnight_on_the_first_stays_on_the_first():
    # 2024-02-29 23:00 UTC = Mar 1 00:00 CET; a month later is Apr 1 00:00 CEST = Mar 31 22:00 UTC.
    assert add_months(utc("2024-02-29T23:00:00"), 1, CPH) == utc("2024-03-31T22:00:00")
    assert add_months(utc("2024-02-29T23:00:00"), 8, CPH) == utc("2024-10-31T23:00:00")  # Nov 1 00:00 CET


def test_a_month_across_the_spring_change_is_an_hour_shorter():
    start = utc("2024-03-15T11:00:00")  # 12:00 CET
    end = add_months(start, 1, CPH)  # Apr 15 12:00 CEST = 10:00 UTC
    assert end == utc("2024-04-15T10:00:00")
    # 31 days less the hour that DST took: 31 × 86 400 − 3 600 = 2 674 800 seconds.
    assert seconds_between(start, end) == 2_674_800


def test_seconds_between_ignores_sub_second_parts():
    start = utc("2024-01-01T00:00:00")
    assert seconds_between(start, start + timedelta(seconds=59, milliseconds=999)) == 59
