"""Subscription metrics computed in SQL from the MRR movement history.

Two entry points, each one SQL statement over ``mrr_movements`` whatever the
number of buckets, both taking a SQLAlchemy ``Session`` or ``Connection``:

* :func:`compute_series` — MRR, ARR, MRR movements, customer churn rate,
  gross revenue churn rate and net revenue retention (of the customers in MRR
  at the start of each bucket, and of the whole period), ARPA, LTV, quick ratio and
  new-versus-churned ratio per day, week or month of ``[start, end)``, plus the
  same metrics over the whole period (:class:`MetricsSeries`).
* :func:`cohort_retention` — customer and revenue retention of each monthly
  start cohort (:class:`CohortRetention`).

Every result has ``to_dict()`` giving plain JSON values. The definitions are
written next to their code (:mod:`hub.metrics.series`,
:mod:`hub.metrics.cohorts`, :mod:`hub.metrics.periods`,
:mod:`hub.metrics.ratios`) and in docs/metrics.md.
"""

from hub.metrics.cohorts import Cohort, CohortPoint, CohortRetention, cohort_retention
from hub.metrics.periods import MAX_BUCKETS, Interval
from hub.metrics.series import BucketMetrics, MetricsSeries, MovementCounts, MrrMovements, compute_series

__all__ = [
    "MAX_BUCKETS",
    "BucketMetrics",
    "Cohort",
    "CohortPoint",
    "CohortRetention",
    "Interval",
    "MetricsSeries",
    "MovementCounts",
    "MrrMovements",
    "cohort_retention",
    "compute_series",
]
