"""The metrics series: MRR, movements and rates per day, week or month, plus period totals.

Definitions (the same text, with a worked example, is in docs/metrics.md).
All amounts are integer minor units of one currency (no FX); "at t" means
"counting every movement with occurred_at < t". A bucket is ``[start, end)``.

Where the numbers come from
    The MRR movement ledger (``mrr_movements``), written by the service layer
    whenever a customer's MRR or revenue state changes, classified per
    customer: ``new`` (first time paying), ``expansion``, ``contraction``,
    ``churned`` (nothing paying or paused any more), ``reactivation`` (a
    churned customer pays again), ``paused`` (everything paying is paused)
    and ``resumed`` (a paused customer pays again). A subscription's MRR is
    its price × quantity less a *forever* coupon, ÷ months per period
    (quarter 3, year 12), rounded half up once; trials, pauses, VAT, one-off
    charges and coupons that run out are not in MRR. A cancellation counts
    when it takes effect (a cancel at period end, at the period end).

MRR (start, end)
    The sum of every movement's amount before the boundary = the sum of the
    MRR of every active and past-due subscription at that moment.
ARR
    MRR × 12, at the same boundary.
Movements (MRR, always shown as positive amounts)
    new, expansion, contraction, churned, reactivation, paused, resumed: the
    amount the movements of that kind in the bucket added or removed.
    The roll-forward always holds:
    MRR end = MRR start + new + expansion + reactivation + resumed
              − contraction − churned − paused.
    ``net`` is the right-hand side minus MRR start.
Movement counts
    The number of movements of each kind in the bucket. Each ``new``,
    ``reactivation`` and ``churned`` is one customer starting, returning or
    leaving (a customer who leaves twice in a bucket counts twice).
Active customers (start, end)
    Customers with at least one active or past-due subscription (they are
    in MRR). Paused customers: every paying subscription is paused; they
    are not in MRR, not active and not churned.
Customer churn rate
    churned customers ÷ (customers on the books at start + new customers +
    reactivated customers), where "on the books" = active or paused. This is
    Stripe's subscriber churn rate (churned in the period over subscribers
    at its start plus those who joined during it); a paused customer who
    cancels is churn then, and counts in the denominator. It is never above 1.
Starting customers (revenue retention's cohort)
    The customers in MRR at the bucket's start (those counted in "active
    customers at start"), less those paused at its end. For each of them,
    s = their MRR at the start and e = their MRR at the end, a customer's MRR
    at t being the sum of their movements before t. New, reactivated and
    resumed customers were not in MRR at the start, so their MRR never counts;
    a starting customer who churns and comes back within the bucket counts
    with what they pay at the end, one who churns and stays away with e = 0.
    "In MRR" is "MRR > 0" for everyone who pays; the one difference is a
    customer whose discount brings their MRR to 0: they are in with s = 0,
    and MRR they gain in the bucket (an ``expansion`` in the ledger) counts
    as retained.
Net revenue retention (NRR)
    Σ e ÷ Σ s over the starting customers. Computed as (MRR at end − end MRR
    of the customers not in MRR at the start) ÷ (MRR at start − start MRR of
    the customers paused at the end). Never negative; above 1 when the
    starting customers' expansion outweighs their churn and contraction;
    null when there is no starting MRR.
Gross revenue churn rate
    Σ max(0, s − e) ÷ Σ s over the starting customers: the MRR they lost to
    churn and contraction, each customer's net loss over the bucket, so a
    customer's expansion offsets only their own contraction, never another
    customer's loss. Always between 0 and 1. Gross revenue retention is
    1 − gross revenue churn = Σ min(s, e) ÷ Σ s, and NRR ≥ 1 − gross revenue
    churn.
Pauses in retention
    Pauses are not churn, and a paused customer pays nothing, so a pause is
    neither retained nor lost revenue: a starting customer paused at the end
    is left out of both sums (numerator and denominator), and a customer
    paused at the start (MRR 0, not in MRR) is not a starting customer, so
    their resumed MRR is not retention. The pause shows in the movements
    (``paused``, ``resumed``) and the paused-customer counts instead. Counting
    a paused customer as not retained would make gross revenue churn count
    pauses as churn.
ARPA (average revenue per account)
    MRR at end ÷ active customers at end, rounded to the minor unit.
LTV (lifetime value)
    ARPA ÷ monthly customer churn rate, where the monthly rate is the
    bucket's customer churn rate ÷ the bucket's length in months (1 for a
    calendar month; see :mod:`hub.metrics.periods`). Computed from the exact
    fractions, rounded once: LTV = MRR end × (customers on the books at
    start + new + reactivated) × months ÷ (active at end × churned).
    Stripe substitutes a churn rate of 1.67 % when there was no churn; we do
    not invent a rate: without churn, LTV is null.
Quick ratio
    (new + expansion + reactivation MRR) ÷ (churned + contraction MRR).
New-versus-churned customer ratio
    (new + reactivated customers) ÷ churned customers: customers gained per
    customer lost.
Period totals
    The same definitions applied to the whole period as one bucket (not an
    average of the buckets). For NRR and gross revenue churn that means the
    customers in MRR at the *period's* start, compared with what they pay at
    its end: churn, contraction or expansion of customers who joined during
    the period never enter them, whatever the period's length.

Rounding and edges (see :mod:`hub.metrics.ratios`): rates and ratios are
decimals with four places, rounded half away from zero from exact integer
fractions; money is rounded once to the minor unit; a division by zero
gives null (``None``), never 0 or infinity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from hub.domain.mrr import Movement
from hub.metrics.ledger import OPENING, Executor, Retention, Tally, series_tallies
from hub.metrics.periods import boundaries, check_currency, check_period, months_between, parse_interval
from hub.metrics.ratios import decimal, fraction, money, rate
from hub.metrics.shapes import plain

ARR_MONTHS = 12


@dataclass(frozen=True)
class MrrMovements:
    """MRR moved in a bucket, per kind, as positive amounts (minor units)."""

    new: int
    expansion: int
    contraction: int
    churned: int
    reactivation: int
    paused: int
    resumed: int

    @property
    def net(self) -> int:
        return (
            self.new
            + self.expansion
            + self.reactivation
            + self.resumed
            - self.contraction
            - self.churned
            - self.paused
        )

    @classmethod
    def from_tally(cls, tally: Tally) -> MrrMovements:
        a = tally.amounts
        return cls(
            new=a[Movement.NEW.value],
            expansion=a[Movement.EXPANSION.value],
            contraction=-a[Movement.CONTRACTION.value],
            churned=-a[Movement.CHURNED.value],
            reactivation=a[Movement.REACTIVATION.value],
            paused=-a[Movement.PAUSED.value],
            resumed=a[Movement.RESUMED.value],
        )

    def to_dict(self) -> dict[str, Any]:
        return {**plain(self), "net": self.net}


@dataclass(frozen=True)
class MovementCounts:
    """How many movements of each kind a bucket had."""

    new: int
    expansion: int
    contraction: int
    churned: int
    reactivation: int
    paused: int
    resumed: int

    @classmethod
    def from_tally(cls, tally: Tally) -> MovementCounts:
        return cls(**{kind.value: tally.counts[kind.value] for kind in Movement})

    def to_dict(self) -> dict[str, Any]:
        return plain(self)


@dataclass(frozen=True)
class BucketMetrics:
    """Every metric for one bucket ``[start, end)`` (or for a whole period)."""

    start: datetime
    end: datetime
    months: Decimal  # the bucket's length in months, four decimals (exact value used for LTV)
    mrr_start: int
    mrr_end: int
    arr_start: int
    arr_end: int
    active_customers_start: int
    active_customers_end: int
    paused_customers_start: int
    paused_customers_end: int
    movements: MrrMovements
    counts: MovementCounts
    customer_churn_rate: Decimal | None
    gross_revenue_churn_rate: Decimal | None
    net_revenue_retention: Decimal | None
    arpa: int | None
    ltv: int | None
    quick_ratio: Decimal | None
    new_vs_churned_ratio: Decimal | None

    def to_dict(self) -> dict[str, Any]:
        return plain(self)


@dataclass(frozen=True)
class MetricsSeries:
    """A series of buckets covering ``[start, end)`` and the totals over the whole period."""

    currency: str
    interval: str
    start: datetime
    end: datetime
    buckets: list[BucketMetrics]
    totals: BucketMetrics

    def to_dict(self) -> dict[str, Any]:
        return plain(self)


@dataclass(frozen=True)
class _Balance:
    """The ledger's running totals at one boundary."""

    mrr: int = 0
    active: int = 0
    on_books: int = 0  # active or paused

    def after(self, tally: Tally) -> _Balance:
        return _Balance(
            mrr=self.mrr + tally.mrr_delta,
            active=self.active + tally.active_delta,
            on_books=self.on_books + tally.subscriber_delta,
        )


def bucket_metrics(
    start: datetime, end: datetime, opening: _Balance, tally: Tally, retention: Retention
) -> BucketMetrics:
    """Apply every definition of the module docstring to one bucket."""
    closing = opening.after(tally)
    moved = MrrMovements.from_tally(tally)
    counts = MovementCounts.from_tally(tally)
    months = months_between(start, end)

    churn_base = opening.on_books + counts.new + counts.reactivation
    churn = fraction(counts.churned, churn_base)
    arpa = fraction(closing.mrr, closing.active)
    ltv = None
    if arpa is not None and churn is not None and churn != 0:
        ltv = arpa / (churn / months)
    # Revenue retention of the starting customers (in MRR at start, not paused at end):
    starting_mrr = opening.mrr - retention.paused_out  # Σ s over them
    retained_mrr = closing.mrr - retention.joined  # Σ e over them (those paused at end have e = 0)
    return BucketMetrics(
        start=start,
        end=end,
        months=decimal(months),
        mrr_start=opening.mrr,
        mrr_end=closing.mrr,
        arr_start=opening.mrr * ARR_MONTHS,
        arr_end=closing.mrr * ARR_MONTHS,
        active_customers_start=opening.active,
        active_customers_end=closing.active,
        paused_customers_start=opening.on_books - opening.active,
        paused_customers_end=closing.on_books - closing.active,
        movements=moved,
        counts=counts,
        customer_churn_rate=rate(churn),
        gross_revenue_churn_rate=rate(fraction(retention.lost, starting_mrr)),
        net_revenue_retention=rate(fraction(retained_mrr, starting_mrr)),
        arpa=money(arpa),
        ltv=money(ltv),
        quick_ratio=rate(
            fraction(moved.new + moved.expansion + moved.reactivation, moved.churned + moved.contraction)
        ),
        new_vs_churned_ratio=rate(fraction(counts.new + counts.reactivation, counts.churned)),
    )


def compute_series(
    session: Executor, *, start: datetime, end: datetime, interval: str, currency: str
) -> MetricsSeries:
    """Every metric per ``interval`` bucket of ``[start, end)`` in ``currency``, and the period totals.

    One SQL statement, whatever the number of buckets. Raises
    :class:`~hub.domain.errors.InvalidRequest` for a naive or empty period,
    an unknown interval or currency, or more than
    :data:`~hub.metrics.periods.MAX_BUCKETS` buckets.
    """
    start, end = check_period(start, end)
    unit = parse_interval(interval)
    check_currency(currency)
    points = boundaries(start, end, unit)
    tallies = series_tallies(session, currency=currency, points=points)

    opening = _Balance().after(tallies.movements.get(OPENING, Tally()))
    balance = opening
    whole = Tally()
    buckets = []
    for index in range(len(points) - 1):
        tally = tallies.movements.get(index, Tally())
        retention = tallies.retention.get(index, Retention())
        buckets.append(bucket_metrics(points[index], points[index + 1], balance, tally, retention))
        balance = balance.after(tally)
        whole.add(tally)
    return MetricsSeries(
        currency=currency,
        interval=unit.value,
        start=start,
        end=end,
        buckets=buckets,
        totals=bucket_metrics(start, end, opening, whole, tallies.whole),
    )
