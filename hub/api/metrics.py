"""/api/v1/metrics: MRR, churn, retention, LTV and cohorts (definitions in docs/metrics.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dateutil.relativedelta import relativedelta
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from hub.api.context import hub
from hub.api.fields import Currency, Timestamp
from hub.api.schemas import Strict
from hub.metrics import CohortRetention, MetricsSeries, cohort_retention, compute_series

blp = Blueprint("metrics", __name__, url_prefix="/api/v1/metrics", description="Subscription metrics")

Rate = fields.Decimal(as_string=True, allow_none=True, metadata={"example": "0.0526"})


class PeriodArgs(Strict):
    start = Timestamp(metadata={"description": "Start of the period (default: 12 months before end)"})
    end = Timestamp(metadata={"description": "End of the period, exclusive (default: the next month start)"})
    currency = Currency()


class SeriesArgs(PeriodArgs):
    interval = fields.String(load_default="month", validate=validate.OneOf(("day", "week", "month")))


class CountsSchema(Schema):
    """One integer per movement kind (a count, or an amount in minor units)."""

    new = fields.Integer()
    expansion = fields.Integer()
    contraction = fields.Integer()
    churned = fields.Integer()
    reactivation = fields.Integer()
    paused = fields.Integer()
    resumed = fields.Integer()


class MovementsSchema(CountsSchema):
    net = fields.Integer()


class BucketSchema(Schema):
    start = Timestamp()
    end = Timestamp()
    months = fields.Decimal(as_string=True)
    mrr_start = fields.Integer()
    mrr_end = fields.Integer()
    arr_start = fields.Integer()
    arr_end = fields.Integer()
    active_customers_start = fields.Integer()
    active_customers_end = fields.Integer()
    paused_customers_start = fields.Integer()
    paused_customers_end = fields.Integer()
    movements = fields.Nested(MovementsSchema)
    counts = fields.Nested(CountsSchema)
    customer_churn_rate = Rate
    gross_revenue_churn_rate = Rate
    net_revenue_retention = Rate
    arpa = fields.Integer(allow_none=True)
    ltv = fields.Integer(allow_none=True)
    quick_ratio = Rate
    new_vs_churned_ratio = Rate


class SeriesSchema(Schema):
    currency = fields.String()
    interval = fields.String()
    start = Timestamp()
    end = Timestamp()
    buckets = fields.List(fields.Nested(BucketSchema))
    totals = fields.Nested(BucketSchema)


class CohortPointSchema(Schema):
    age = fields.Integer()
    as_of = Timestamp()
    retained_customers = fields.Integer()
    customer_retention = Rate
    mrr = fields.Integer()
    revenue_retention = Rate


class CohortSchema(Schema):
    month = fields.Date()
    customers = fields.Integer()
    starting_mrr = fields.Integer()
    points = fields.List(fields.Nested(CohortPointSchema))


class CohortsSchema(Schema):
    currency = fields.String()
    start = Timestamp()
    end = Timestamp()
    cohorts = fields.List(fields.Nested(CohortSchema))


def _period(args: dict[str, Any]) -> tuple[datetime, datetime, str]:
    now = hub().clock.now().astimezone(UTC)
    end = args.get("end") or (
        now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + relativedelta(months=1)
    )
    start = args.get("start") or end - relativedelta(months=12)
    return start, end, args.get("currency") or hub().settings.default_currency


@blp.route("")
@blp.arguments(SeriesArgs, location="query")
@blp.response(200, SeriesSchema)
def series(args: dict[str, Any]) -> MetricsSeries:
    """MRR, ARR, MRR movements, churn, NRR, ARPA, LTV and ratios per day, week or month, with totals"""
    start, end, currency = _period(args)
    with hub().session_factory() as session:
        return compute_series(session, start=start, end=end, interval=args["interval"], currency=currency)


@blp.route("/cohorts")
@blp.arguments(PeriodArgs, location="query")
@blp.response(200, CohortsSchema)
def cohorts(args: dict[str, Any]) -> CohortRetention:
    """Customer and revenue retention of each monthly start cohort"""
    start, end, currency = _period(args)
    with hub().session_factory() as session:
        return cohort_retention(session, start=start, end=end, currency=currency)
