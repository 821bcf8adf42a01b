"""Cohort retention by start month.

Definitions (also in docs/metrics.md, "Cohort retention"):

Cohort
    The calendar month (UTC) of a customer's first ``new`` movement, i.e. the
    month the customer first paid (a trial joins the cohort of the month it
    converts). Stored on every movement as ``MrrMovement.cohort``; a
    customer never changes cohort, not even after churning and coming back.
Cohort size (customers) and starting MRR
    The number of ``new`` movements of the cohort and the MRR they brought.
Age
    0 for the cohort's own month, 1 for the month after, and so on. The
    figures for age ``k`` are measured at the end of that month (``as_of``),
    or at the end of the requested period if that comes first.
Retained customers
    Cohort size − churned customers of the cohort so far, where a churn
    counts +1 and a reactivation −1 (the ledger's ``churn_delta``). A paused
    customer is retained (a pause is not churn); a customer who churned and
    came back is retained again.
Customer retention
    retained customers ÷ cohort size, four decimals, null for an empty cohort.
MRR and revenue retention
    The cohort's MRR at ``as_of`` (all its movements added up: expansion,
    contraction, churn, pauses, reactivation) and that MRR ÷ starting MRR, so
    revenue retention can exceed 1 when the cohort expanded.

Every month from the month of ``start`` to the month of the last instant
before ``end`` is a cohort, with a point for every month from its own to the
last, so the result is a triangle. One SQL query (grouped by cohort and
month) feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hub.metrics.ledger import CohortTally, Executor, cohort_tallies
from hub.metrics.periods import Interval, boundaries, check_currency, check_period, month_start
from hub.metrics.ratios import fraction, rate
from hub.metrics.shapes import plain


@dataclass(frozen=True)
class CohortPoint:
    age: int
    as_of: datetime
    retained_customers: int
    customer_retention: Decimal | None
    mrr: int
    revenue_retention: Decimal | None

    def to_dict(self) -> dict[str, Any]:
        return plain(self)


@dataclass(frozen=True)
class Cohort:
    month: date
    customers: int
    starting_mrr: int
    points: list[CohortPoint]

    def to_dict(self) -> dict[str, Any]:
        return plain(self)


@dataclass(frozen=True)
class CohortRetention:
    currency: str
    start: datetime
    end: datetime
    cohorts: list[Cohort]

    def to_dict(self) -> dict[str, Any]:
        return plain(self)


def cohort_retention(session: Executor, *, start: datetime, end: datetime, currency: str) -> CohortRetention:
    """Retention of every monthly cohort from the month of ``start`` to the month before ``end``.

    One SQL query. Raises :class:`~hub.domain.errors.InvalidRequest` for a
    naive or empty period or an unknown currency.
    """
    start, end = check_period(start, end)
    check_currency(currency)
    first = month_start(start)
    points = boundaries(first, end, Interval.MONTH)  # month starts, the last one cut at ``end``
    last = month_start(end - timedelta(microseconds=1))
    tallies = cohort_tallies(session, currency=currency, points=points, first=first.date(), last=last.date())

    cohorts = []
    for own in range(len(points) - 1):
        month = points[own].date()
        joined = tallies.get((month, own), CohortTally())
        customers, starting_mrr = joined.new_customers, joined.new_mrr
        churned = mrr = 0
        series = []
        for index in range(own, len(points) - 1):
            moved = tallies.get((month, index), CohortTally())
            churned += moved.churn_delta
            mrr += moved.mrr_delta
            retained = customers - churned
            series.append(
                CohortPoint(
                    age=index - own,
                    as_of=points[index + 1],
                    retained_customers=retained,
                    customer_retention=rate(fraction(retained, customers)),
                    mrr=mrr,
                    revenue_retention=rate(fraction(mrr, starting_mrr)),
                )
            )
        cohorts.append(Cohort(month=month, customers=customers, starting_mrr=starting_mrr, points=series))
    return CohortRetention(currency=currency, start=start, end=end, cohorts=cohorts)
