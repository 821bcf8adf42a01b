"""The SQL: aggregates over ``mrr_movements``, one query per request, whatever the bucket count.

The ledger has one row per change of a customer's MRR or revenue state,
written by the service layer in the transaction of the change (see
:mod:`hub.services.revenue`). So, for one currency:

* MRR at ``t``              = SUM(amount)       of movements with ``occurred_at < t``
* active customers at ``t`` = SUM(active_delta) of movements with ``occurred_at < t``
* customers on the books (active or paused) at ``t``
                            = COUNT(kind = 'new') − SUM(churn_delta), ``occurred_at < t``

A bucket number is computed for each row in SQL with a *balanced* ``CASE``
over the boundaries (computed in Python, bound as parameters): every row
costs about log2(buckets) comparisons, the expression is plain SQL that runs
the same on SQLite and PostgreSQL, and a row before the first boundary gets
bucket -1, the opening balance. One ``GROUP BY bucket, kind`` then returns at
most (buckets + 1) × 7 small rows; Python only adds those up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Integer, case, func, literal_column, select
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
# few hundred buckets, close to the truth, and hashes. SQLite does the same work
# either way (``LIMIT -1 OFFSET 0``).

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


def movement_tallies(executor: Executor, *, currency: str, points: Sequence[datetime]) -> dict[int, Tally]:
    """One :class:`Tally` per bucket of ``points`` (``OPENING`` for everything before ``points[0]``)."""
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
    query = select(
        rows.c.bucket,
        rows.c.kind,
        func.count(),
        func.sum(rows.c.amount),
        func.sum(rows.c.active_delta),
        func.sum(rows.c.churn_delta),
    ).group_by(rows.c.bucket, rows.c.kind)
    tallies: dict[int, Tally] = defaultdict(Tally)
    for bucket, kind, count, amount, active, churn in executor.execute(query):
        tally = tallies[int(bucket)]
        tally.counts[kind] += int(count)
        tally.amounts[kind] += _int(amount)
        tally.active_delta += _int(active)
        tally.churn_delta += _int(churn)
    return tallies


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
