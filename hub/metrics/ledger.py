"""The SQL: aggregates over ``mrr_movements``, one statement per request, whatever the bucket count.

The ledger has one row per change of a customer's MRR or revenue state,
written by the service layer in the transaction of the change (see
:mod:`hub.services.revenue`). Each row's ``amount`` is the change of that
customer's MRR, so, for one currency:

* MRR at ``t``              = SUM(amount)       of movements with ``occurred_at < t``
* active customers at ``t`` = SUM(active_delta) of movements with ``occurred_at < t``
* customers on the books (active or paused) at ``t``
                            = COUNT(kind = 'new') − SUM(churn_delta), ``occurred_at < t``

and the same sums restricted to one customer give that customer's MRR, activity
(0 or 1) and pause (0 or 1) at ``t``.

A bucket number is computed for each row in SQL with a *balanced* ``CASE``
over the boundaries (computed in Python, bound as parameters): every row
costs about log2(buckets) comparisons, the expression is plain SQL that runs
the same on SQLite and PostgreSQL, and a row before the first boundary gets
bucket -1, the opening balance.

The series (:func:`series_tallies`) is one ``UNION ALL`` statement, so every
figure comes from one snapshot of the ledger, in three parts:

1. ``GROUP BY bucket, kind`` over the rows before the period end: at most
   (buckets + 1) × 7 small rows, the movements of each bucket and the opening
   balance. Python adds those up into running balances.
2. Revenue retention per bucket, from the rows inside the period: ``GROUP BY
   customer, bucket`` (a CTE) gives each customer's change over the bucket of
   MRR (``moved``), of activity (``activated``: +1 = not in MRR at the bucket
   start but in it at the end) and of pause (``paused``: +1 = paused at the end
   but not at the start), and an outer ``GROUP BY bucket`` adds up three
   amounts (see :class:`Retention`). No window function and no per-customer
   state before the bucket is needed: the three changes say enough.
3. The same three amounts for the whole period as one bucket, from the CTE
   grouped again by customer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Integer, case, func, literal_column, null, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from hub.domain.mrr import Movement
from hub.store.models import MrrMovement

OPENING = -1  # the bucket of everything before the first boundary

# FENCE: the rows are numbered in a subquery with ``OFFSET 0``, which keeps
# PostgreSQL from merging it into the outer query. Merged, the planner
# estimates the number of groups of ``GROUP BY <CASE over occurred_at>`` from
# the number of distinct timestamps (about one per row), expects a huge result,
# and picks a disk sort plus JIT compilation of the whole CASE: 2 s instead of
# 0.4 s for a year of days over a million rows. Behind the fence it assumes a
# few hundred buckets, close to the truth, and hashes. For the retention part
# (``GROUP BY customer, bucket``) the fence matters even more: merged, the
# planner walks the ``customer_id`` index to get the rows in customer order,
# one random heap read per row: 3.7 s instead of 0.5 s for a year of months.
# SQLite does the same work either way (``LIMIT -1 OFFSET 0``).

Executor = Session | Connection


def bucket_number(column: Any, points: Sequence[datetime], *, opening: bool = True) -> ColumnElement[int]:
    """``i`` when ``points[i] <= column < points[i + 1]``; -1 below ``points[0]`` if ``opening``.

    Rows at or after ``points[-1]`` must be filtered out by the caller.
    """

    def split(low: int, high: int) -> ColumnElement[int]:
        if low == high:
            return literal_column(str(low), Integer)
        middle = (low + high + 1) // 2  # below points[middle]: low..middle-1, else middle..high
        return case((column < points[middle], split(low, middle - 1)), else_=split(middle, high))

    return split(OPENING if opening else 0, len(points) - 2)


def _int(value: Any) -> int:
    return int(value or 0)  # SUM of nothing is NULL; PostgreSQL sums BIGINT as NUMERIC


@dataclass
class Tally:
    """What the movements of one bucket add up to."""

    amounts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    active_delta: int = 0
    churn_delta: int = 0

    @property
    def mrr_delta(self) -> int:
        return sum(self.amounts.values())

    @property
    def subscriber_delta(self) -> int:
        """Change in customers on the books (active or paused): +1 per new, ∓1 per churn/reactivation."""
        return self.counts[Movement.NEW.value] - self.churn_delta

    def add(self, other: Tally) -> None:
        for kind, amount in other.amounts.items():
            self.amounts[kind] += amount
        for kind, count in other.counts.items():
            self.counts[kind] += count
        self.active_delta += other.active_delta
        self.churn_delta += other.churn_delta


@dataclass(frozen=True)
class Retention:
    """Revenue retention of one bucket (or of the whole period), in minor units.

    The "starting customers" of a bucket are those in MRR at its start, less
    those paused at its end (see :mod:`hub.metrics.series`). Per customer,
    ``s`` and ``e`` are their MRR at the bucket's start and end.

    * ``joined``: Σ e over the customers *not* in MRR at the start (new,
      reactivated, resumed): the MRR at end that is not retention.
    * ``paused_out``: Σ s over the customers in MRR at the start and paused at
      the end: starting MRR left out of retention (a pause is not churn).
    * ``lost``: Σ max(0, s − e) over the starting customers: MRR lost to
      churn and contraction, net of each customer's own expansion, never
      offset by another customer's.
    """

    joined: int = 0
    paused_out: int = 0
    lost: int = 0


@dataclass
class SeriesTallies:
    """Everything :func:`series_tallies` returns: per bucket, and for the whole period."""

    movements: dict[int, Tally] = field(default_factory=lambda: defaultdict(Tally))
    retention: dict[int, Retention] = field(default_factory=dict)
    whole: Retention = field(default_factory=Retention)


# Which part of the UNION ALL a row of :func:`series_tallies` comes from.
_MOVEMENTS, _RETENTION, _WHOLE = 0, 1, 2


def _part(number: int) -> ColumnElement[int]:
    return literal_column(str(number), Integer)


def _retention_sums(moved: Any, activated: Any, paused: Any) -> list[ColumnElement[Any]]:
    """``joined``, ``paused_out``, ``lost`` of :class:`Retention`, from per-customer changes.

    Per customer over a bucket, with s and e their MRR at its start and end
    (both ≥ 0; a customer out of MRR has MRR 0), ``moved`` = e − s:

    * ``activated = +1``: out of MRR at the start, in it at the end, so s = 0
      and e = ``moved``. Every customer out of MRR at the start with e > 0
      is one of these.
    * ``paused = +1``: paused at the end, not at the start, so e = 0 and
      s = −``moved`` (0 for a customer who was out of MRR at the start too).
      For a customer in MRR at the start this *is* "paused at the end".
    * otherwise ``max(0, −moved)`` = max(0, s − e), which is 0 for every
      customer out of MRR at the start (s = 0).
    """
    return [
        func.sum(case((activated == 1, moved), else_=0)),
        func.sum(case((paused == 1, -moved), else_=0)),
        func.sum(case(((paused != 1) & (moved < 0), -moved), else_=0)),
    ]


def series_tallies(executor: Executor, *, currency: str, points: Sequence[datetime]) -> SeriesTallies:
    """Movements per bucket of ``points`` (``OPENING`` before ``points[0]``) and revenue retention."""
    m = MrrMovement
    rows = (
        select(
            bucket_number(m.occurred_at, points).label("bucket"),
            m.kind,
            m.amount,
            m.active_delta,
            m.churn_delta,
        )
        .where(m.currency == currency, m.occurred_at < points[-1])
        .offset(0)  # see FENCE
        .subquery()
    )
    movements = select(
        _part(_MOVEMENTS).label("part"),
        rows.c.bucket,
        rows.c.kind,
        func.count(),
        func.sum(rows.c.amount),
        func.sum(rows.c.active_delta),
        func.sum(rows.c.churn_delta),
    ).group_by(rows.c.bucket, rows.c.kind)

    # A customer's change of pause over a bucket: +1 paused, −1 resumed or
    # churned while paused, 0 otherwise. It is the change of "on the books"
    # (+1 new, −churn_delta) less the change of "active" (active_delta).
    paused_delta = case((m.kind == Movement.NEW.value, 1), else_=0) - m.churn_delta - m.active_delta
    inside = (
        select(
            m.customer_id,
            bucket_number(m.occurred_at, points, opening=False).label("bucket"),
            m.amount,
            m.active_delta,
            paused_delta.label("paused_delta"),
        )
        .where(m.currency == currency, m.occurred_at >= points[0], m.occurred_at < points[-1])
        .offset(0)  # see FENCE
        .subquery()
    )
    per_customer = (
        select(
            inside.c.customer_id,
            inside.c.bucket,
            func.sum(inside.c.amount).label("moved"),
            func.sum(inside.c.active_delta).label("activated"),
            func.sum(inside.c.paused_delta).label("paused"),
        )
        .group_by(inside.c.customer_id, inside.c.bucket)
        .cte("per_customer")
    )
    by_bucket = select(
        _part(_RETENTION),
        per_customer.c.bucket,
        null(),
        *_retention_sums(per_customer.c.moved, per_customer.c.activated, per_customer.c.paused),
        _part(0),
    ).group_by(per_customer.c.bucket)
    whole_period = (
        select(
            func.sum(per_customer.c.moved).label("moved"),
            func.sum(per_customer.c.activated).label("activated"),
            func.sum(per_customer.c.paused).label("paused"),
        )
        .group_by(per_customer.c.customer_id)
        .subquery()
    )
    whole = select(
        _part(_WHOLE),
        _part(OPENING),
        null(),
        *_retention_sums(whole_period.c.moved, whole_period.c.activated, whole_period.c.paused),
        _part(0),
    )

    result = SeriesTallies()
    for part, bucket, kind, first, second, third, fourth in executor.execute(
        union_all(movements, by_bucket, whole)
    ):
        if part == _MOVEMENTS:
            tally = result.movements[int(bucket)]
            tally.counts[kind] += int(first)
            tally.amounts[kind] += _int(second)
            tally.active_delta += _int(third)
            tally.churn_delta += _int(fourth)
        else:
            retention = Retention(joined=_int(first), paused_out=_int(second), lost=_int(third))
            if part == _RETENTION:
                result.retention[int(bucket)] = retention
            else:
                result.whole = retention
    return result


@dataclass
class CohortTally:
    """What one cohort's movements in one month add up to."""

    new_customers: int = 0
    new_mrr: int = 0
    churn_delta: int = 0
    mrr_delta: int = 0


def cohort_tallies(
    executor: Executor, *, currency: str, points: Sequence[datetime], first: date, last: date
) -> dict[tuple[date, int], CohortTally]:
    """Per (cohort month, month bucket of ``points``): new customers, their MRR, churn and MRR change.

    Only cohorts ``first``..``last``. A cohort's movements all happen in or
    after its month, so filtering ``occurred_at >= points[0]`` loses none.
    """
    m = MrrMovement
    rows = (
        select(
            m.cohort,
            bucket_number(m.occurred_at, points, opening=False).label("bucket"),
            m.kind,
            m.amount,
            m.churn_delta,
        )
        .where(
            m.currency == currency,
            m.occurred_at >= points[0],
            m.occurred_at < points[-1],
            m.cohort >= first,
            m.cohort <= last,
        )
        .offset(0)  # see FENCE
        .subquery()
    )
    is_new = rows.c.kind == Movement.NEW.value
    query = select(
        rows.c.cohort,
        rows.c.bucket,
        func.sum(case((is_new, 1), else_=0)),
        func.sum(case((is_new, rows.c.amount), else_=0)),
        func.sum(rows.c.churn_delta),
        func.sum(rows.c.amount),
    ).group_by(rows.c.cohort, rows.c.bucket)
    result: dict[tuple[date, int], CohortTally] = {}
    for cohort, bucket, new_customers, new_mrr, churn, amount in executor.execute(query):
        tally = CohortTally(_int(new_customers), _int(new_mrr), _int(churn), _int(amount))
        result[(cohort, int(bucket))] = tally
    return result
