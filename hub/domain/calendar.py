"""Billing periods and anchoring.

A period's end is always computed from the billing-cycle anchor, never from the
previous end: a subscription anchored on Jan 31 renews on Feb 28 (Feb 29 in a
leap year), Mar 31, Apr 30, ... because ``anchor + n months`` is clamped to the
last day of a short month while the anchor keeps its day. The calendar is read
in the billing time zone (``ABOHUB_BILLING_TIMEZONE``); stored times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta


class Interval(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


_MONTHS = {Interval.MONTH: 1, Interval.QUARTER: 3, Interval.YEAR: 12}


def months_per_period(interval: str, interval_count: int = 1) -> int:
    """Length of one billing period in months: quarter = 3, year = 12, every N months = N."""
    if interval_count < 1:
        raise ValueError("interval_count must be at least 1")
    return _MONTHS[Interval(interval)] * interval_count


def require_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return moment.astimezone(UTC)


def add_months(anchor: datetime, months: int, tz: str = "UTC") -> datetime:
    """``anchor`` plus ``months`` calendar months in ``tz``, clamped to month ends, as UTC."""
    local = require_utc(anchor).astimezone(ZoneInfo(tz))
    shifted = local + relativedelta(months=months)
    # Re-attach the zone so a DST change between the two dates keeps the wall time.
    return shifted.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)


def period_end_after(anchor: datetime, months: int, after: datetime, tz: str = "UTC") -> datetime:
    """The first anchored period boundary strictly later than ``after``."""
    anchor = require_utc(anchor)
    after = require_utc(after)
    if after < anchor:
        return anchor
    local_anchor = anchor.astimezone(ZoneInfo(tz))
    local_after = after.astimezone(ZoneInfo(tz))
    elapsed = (local_after.year - local_anchor.year) * 12 + (local_after.month - local_anchor.month)
    n = max(1, elapsed // months)
    # The estimate can be one period early or late around month ends; walk to the exact one.
    while n > 1 and add_months(anchor, months * (n - 1), tz) > after:
        n -= 1
    while add_months(anchor, months * n, tz) <= after:
        n += 1
    return add_months(anchor, months * n, tz)


def seconds_between(start: datetime, end: datetime) -> int:
    """Whole seconds from ``start`` to ``end`` (sub-second parts are ignored)."""
    return int((require_utc(end) - require_utc(start)).total_seconds())
