"""Periods and buckets: how a request's [start, end) is cut into days, weeks or months; request checks.

Rules (also in docs/metrics.md, "Periods and buckets"):

* Every time is UTC. A naive datetime is refused, never guessed.
* A period is half-open, ``[start, end)``: a movement at exactly ``end``
  belongs to the next period, one at exactly ``start`` to this one.
* Buckets follow the calendar: a day starts at 00:00 UTC, a week on Monday at
  00:00 UTC, a month on its 1st at 00:00 UTC. When ``start`` or ``end`` is not
  on such a boundary, the first or last bucket is cut short there; the
  buckets always cover ``[start, end)`` exactly, without gaps or overlaps.
* The length of a bucket *in months* (used to turn a churn rate into a
  monthly one for LTV) is the number of calendar months when the bucket runs
  from the 1st of a month to the 1st of a month, and otherwise its length in
  days divided by 30.4375, the average month (365.25 / 12).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from fractions import Fraction

from hub.domain.errors import InvalidRequest
from hub.domain.money import is_currency

# The average Gregorian month, 365.25 / 12 days, in microseconds.
AVERAGE_MONTH_US = 2_629_800 * 1_000_000
# A bound on buckets per request (about ten years of days): keeps the SQL small.
MAX_BUCKETS = 3_660


class Interval(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        message = "must carry a UTC offset (ISO 8601 with offset)"
        raise InvalidRequest(f"{name} must be timezone-aware", fields={name: [message]})
    return moment.astimezone(UTC)


def check_period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """``start`` and ``end`` as UTC, or :class:`InvalidRequest` when the period is empty or naive."""
    start, end = utc(start, "start"), utc(end, "end")
    if end <= start:
        raise InvalidRequest("the period is empty", fields={"end": ["must be after start"]})
    return start, end


def check_currency(currency: str) -> str:
    if not isinstance(currency, str) or not is_currency(currency):
        raise InvalidRequest("unknown currency", fields={"currency": ["is not an ISO 4217 currency code"]})
    return currency


def parse_interval(interval: str) -> Interval:
    try:
        return Interval(interval)
    except ValueError:
        names = ", ".join(i.value for i in Interval)
        raise InvalidRequest("unknown interval", fields={"interval": [f"must be one of {names}"]}) from None


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(moment: datetime, months: int) -> datetime:
    """The 1st of the month ``months`` after ``moment``'s month (``moment`` is a month start)."""
    index = moment.year * 12 + (moment.month - 1) + months
    return moment.replace(year=index // 12, month=index % 12 + 1)


def floor(moment: datetime, interval: Interval) -> datetime:
    """The calendar boundary at or before ``moment``."""
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval is Interval.DAY:
        return day
    if interval is Interval.WEEK:
        return day - timedelta(days=day.weekday())  # Monday is weekday 0
    return month_start(moment)


def step(boundary: datetime, interval: Interval) -> datetime:
    """The calendar boundary after ``boundary`` (which is itself a boundary)."""
    if interval is Interval.DAY:
        return boundary + timedelta(days=1)
    if interval is Interval.WEEK:
        return boundary + timedelta(days=7)
    return add_months(boundary, 1)


def boundaries(start: datetime, end: datetime, interval: Interval) -> list[datetime]:
    """``[start, b1, b2, ..., end]``: bucket ``i`` is ``[points[i], points[i + 1])``."""
    points = [start]
    boundary = step(floor(start, interval), interval)
    while boundary < end:
        points.append(boundary)
        if len(points) > MAX_BUCKETS:
            raise InvalidRequest(
                "too many buckets",
                fields={"interval": [f"gives more than {MAX_BUCKETS} buckets; choose a longer interval"]},
            )
        boundary = step(boundary, interval)
    points.append(end)
    return points


def is_month_start(moment: datetime) -> bool:
    return moment == month_start(moment)


def months_between(start: datetime, end: datetime) -> Fraction:
    """The length of ``[start, end)`` in months (see the module docstring)."""
    if is_month_start(start) and is_month_start(end):
        return Fraction((end.year - start.year) * 12 + (end.month - start.month))
    return Fraction((end - start) // timedelta(microseconds=1), AVERAGE_MONTH_US)
